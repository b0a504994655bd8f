"""Backends: onnxruntime and torch read the same texts; exported files carry their settings; the
bundled .onnx is the bundled .pt; bad files and impossible choices are refused with the reason."""

from __future__ import annotations

import io
import random
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from captcha.image import ImageCaptcha
from PIL import Image

from scrapy_captcha import CaptchaSettingsError, Solver
from scrapy_captcha.backends import BackendError, load_backend, resolve
from scrapy_captcha.backends.onnx_backend import OnnxBackend
from scrapy_captcha.backends.torch_backend import TorchBackend
from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.image import InvalidImageError, pad_batch, to_array
from scrapy_captcha.model import ModelConfig, build_model
from scrapy_captcha.weights import BUNDLED_DIR, BUNDLED_ONNX, BUNDLED_WEIGHTS, WeightsError, bundled_models, load_weights, save_weights
from trainer import cli
from trainer.export import export, to_onnx_bytes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fixed_set() -> list[tuple[str, bytes]]:
    """120 seed-style captchas (the bundled model's task) and a few images nothing like one."""
    rng = random.Random(7)
    images = []
    for _ in range(120):
        label = "".join(rng.choice(SEED_ALPHABET) for _ in range(4))
        images.append((label, ImageCaptcha(160, 60).generate(label).getvalue()))
    noise = np.random.default_rng(0).integers(0, 256, (60, 160), dtype=np.uint8)
    for image in (Image.new("L", (160, 60), 255), Image.fromarray(noise), Image.new("RGB", (300, 80), (20, 90, 200))):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        images.append(("", buffer.getvalue()))
    return images


def test_both_backends_read_the_same_texts_with_the_same_confidences(fixed_set):
    onnx, torch_ = Solver.from_path(backend="onnx"), Solver.from_path(backend="torch")
    assert (onnx.backend.name, torch_.backend.name) == ("onnx", "torch")
    assert onnx.config == torch_.config
    data = [image for _, image in fixed_set]
    by_onnx, by_torch = onnx.solve_batch(data), torch_.solve_batch(data)
    assert [p.text for p in by_onnx] == [p.text for p in by_torch]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(by_onnx, by_torch)) < 1e-4
    for a, b in zip(by_onnx, by_torch):
        assert a.char_confidences == pytest.approx(b.char_confidences, abs=1e-4)
    read = sum(p.text.lower() == label.lower() for p, (label, _) in zip(by_onnx, fixed_set))
    assert read >= 100, f"{read}/120: a model reading nothing would agree with itself trivially"
    assert [onnx.solve(image).text for image in data[:10]] == [p.text for p in by_onnx[:10]]


@pytest.mark.parametrize("name", bundled_models())
def test_each_bundled_onnx_file_is_its_pt(name, fixed_set):
    """Fails when a bundled NAME.pt is retrained without re-exporting: run `make bundled-onnx`."""
    weights = load_weights(name)
    onnx = OnnxBackend(BUNDLED_DIR / f"{name}.onnx")
    assert onnx.config == weights.config and onnx.summary == weights.summary
    batch = pad_batch([to_array(image, weights.config) for _, image in fixed_set])  # widths differ in "height" mode
    with torch.inference_mode():
        expected = weights.build()(torch.from_numpy(batch)).numpy()
    assert np.abs(onnx.run(batch) - expected).max() < 1e-3, f"{name}.onnx is stale: run `make bundled-onnx`"


def test_the_bundled_model_exported_as_a_conv_chain_reads_as_torch(fixed_set, tmp_path):
    """The export's graph (BatchNorm, input scaling and the per-column layers folded into convolutions)
    gives the torch model's texts and confidences, one image at a time as the middleware solves."""
    path = tmp_path / "chain.onnx"
    path.write_bytes(to_onnx_bytes(load_weights()))
    chain, torch_ = Solver(OnnxBackend(path)), Solver.from_path(backend="torch")
    data = [image for _, image in fixed_set]
    by_chain, by_torch = [chain.solve(image) for image in data], [torch_.solve(image) for image in data]
    assert [p.text for p in by_chain] == [p.text for p in by_torch]
    assert [p.confidence for p in by_chain] == pytest.approx([p.confidence for p in by_torch], abs=1e-5)
    for a, b in zip(by_chain, by_torch):
        assert a.char_confidences == pytest.approx(b.char_confidences, abs=1e-5)


def _operators(path) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


def small(config: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():  # BatchNorm statistics away from the identity, so a wrong export shows
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("config", [
    ModelConfig(alphabet="0123456789abc", max_length=6, hidden=32, case_sensitive=False),
    ModelConfig(alphabet="0123456789+-=?", resize="height", height=32, min_width=48, max_width=320, hidden=32),
    ModelConfig(alphabet="0123456789abc", resize="height", height=48, hidden=24, widths=(8, 12, 16, 16)),
    ModelConfig(arch="seed-vgg", max_length=4),
], ids=["crnn-stretch", "crnn-height", "crnn-four-convolutions", "seed-vgg"])
def test_export_keeps_settings_summary_and_outputs(tmp_path, config):
    pt = save_weights(tmp_path / "model.pt", small(config), config, {"trained_with": "test", "epoch": 3, "nested": {"a": [1, 2]}})
    out, difference = export(pt, tmp_path / "out" / "model.onnx")
    assert difference < 1e-3
    backend = load_backend(out)
    assert backend.name == "onnx" and backend.config == config
    assert backend.summary == {"trained_with": "test", "epoch": 3, "nested": {"a": [1, 2]}}
    sizes = [(160, 60), (90, 40), (400, 50), (30, 30)]
    images = []
    for index, size in enumerate(sizes * 2):
        array = np.random.default_rng(index).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        images.append(Image.fromarray(array))
    if config.resize == "height":
        assert len({to_array(image, config).shape[-1] for image in images}) == 4  # dynamic width
    by_onnx = Solver(backend).solve_batch(images)
    by_torch = Solver(load_backend(pt)).solve_batch(images)
    assert [p.text for p in by_onnx] == [p.text for p in by_torch]
    assert [p.confidence for p in by_onnx] == pytest.approx([p.confidence for p in by_torch], abs=1e-4)


@pytest.mark.parametrize("config", [
    ModelConfig(alphabet="0123456789abc", max_length=6, hidden=32),
    ModelConfig(alphabet="0123456789+-=?", resize="height", height=48, min_width=48, max_width=320, hidden=24),
], ids=["crnn-stretch", "crnn-height-48"])
def test_a_crnn_is_exported_as_one_chain_of_convolutions(tmp_path, config):
    weights = load_weights(save_weights(tmp_path / "model.pt", small(config, seed=3), config))
    chain, plain = tmp_path / "chain.onnx", tmp_path / "plain.onnx"
    chain.write_bytes(to_onnx_bytes(weights))
    plain.write_bytes(to_onnx_bytes(weights, conv_chain=False))
    operators = _operators(chain)
    first, last = operators.index("Conv"), len(operators) - operators[::-1].index("Conv")
    assert set(operators[first:last]) == {"Conv", "Relu", "MaxPool"}, operators  # no transposes or reshapes inside
    assert operators.count("Conv") == 9 and "BatchNormalization" not in operators
    assert {"MatMul", "Transpose"} <= set(_operators(plain))  # the torch exporter's graph of the module as written
    model = weights.build()
    for batch, width in ((1, config.width), (3, 96), (2, 200)):
        images = np.random.default_rng(width).random((batch, config.channels, config.height, width), dtype=np.float32)
        images[0, :, :, : width // 3] = 1.0  # white margins: the first convolution pads with white
        with torch.inference_mode():
            expected = model(torch.from_numpy(images)).numpy()
        for path in (chain, plain):
            got = OnnxBackend(path).run(images)
            assert got.shape == expected.shape == (batch, width // 8, len(config.alphabet) + 1)
            assert np.abs(got - expected).max() < 1e-4, path.name


@pytest.mark.parametrize("height, trimmed", [(60, 1), (44, 1), (48, 0)])
def test_the_chain_computes_no_row_that_a_pooling_drops(tmp_path, height, trimmed):
    """60 px: 30 -> 15 rows into the second pooling, which reads 14 of them; 44 px: 22 -> 11; 48 px: none dropped."""
    import onnx

    config = ModelConfig(alphabet="0123456789abc", max_length=6, hidden=32, height=height, resize="height")
    weights = load_weights(save_weights(tmp_path / "model.pt", small(config, seed=5), config))
    chain = tmp_path / "chain.onnx"
    chain.write_bytes(to_onnx_bytes(weights))
    pads = [list(a.ints) for node in onnx.load(str(chain)).graph.node if node.op_type == "Conv"
            for a in node.attribute if a.name == "pads"]
    assert pads.count([1, 1, 0, 1]) == trimmed and pads.count([1, 1, 1, 1]) == 5 - trimmed  # five 3x3 convolutions
    operators = [op for op in _operators(chain) if op != "Constant"]
    assert operators[:2] == ["Sub", "Conv"] and operators[-2:] == ["Transpose", "Squeeze"]  # no Pad, no Gather
    images = np.random.default_rng(height).random((2, 1, height, 120), dtype=np.float32)
    images[:, :, -3:] = 1.0  # white bottom rows: the rows next to the trimmed padding
    with torch.inference_mode():
        expected = weights.build()(torch.from_numpy(images)).numpy()
    assert np.abs(OnnxBackend(chain).run(images) - expected).max() < 1e-4


def test_export_on_the_command_line(tmp_path, capsys):
    config = ModelConfig(alphabet="abc", max_length=4, hidden=16)
    pt = save_weights(tmp_path / "m.pt", small(config), config)
    assert cli.main(["export", str(pt), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "largest logit difference from torch" in capsys.readouterr().out
    assert OnnxBackend(tmp_path / "m.onnx").config == config
    assert cli.main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_unusable_onnx_files_are_refused_with_the_reason(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(WeightsError, match=f"{garbage}: not a readable ONNX model"):
        OnnxBackend(garbage)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(BUNDLED_ONNX.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="not a readable ONNX model"):
        OnnxBackend(truncated)
    with pytest.raises(WeightsError, match="does not exist"):
        OnnxBackend(tmp_path / "missing.onnx")
    import onnx

    foreign = onnx.load_from_string(BUNDLED_ONNX.read_bytes())
    del foreign.metadata_props[:]
    (tmp_path / "foreign.onnx").write_bytes(foreign.SerializeToString())
    with pytest.raises(WeightsError, match="not one exported by scrapy-captcha"):
        OnnxBackend(tmp_path / "foreign.onnx")
    damaged = onnx.load_from_string(BUNDLED_ONNX.read_bytes())
    for prop in damaged.metadata_props:
        if prop.key == "scrapy_captcha.config":
            prop.value = '{"arch": "crnn", "colour": "blue"}'
    (tmp_path / "damaged.onnx").write_bytes(damaged.SerializeToString())
    with pytest.raises(WeightsError, match="damaged model settings.*colour"):
        OnnxBackend(tmp_path / "damaged.onnx")


def test_which_backend_reads_which_file(tmp_path):
    assert resolve(None) == ("onnx", BUNDLED_ONNX)
    assert resolve(BUNDLED_WEIGHTS) == ("onnx", BUNDLED_ONNX)  # the bundled model, named by its .pt
    assert resolve(None, "torch") == ("torch", BUNDLED_WEIGHTS)
    assert resolve(None, "auto", "cuda") == ("torch", BUNDLED_WEIGHTS)  # GPUs: torch, when installed
    assert resolve(tmp_path / "m.pt") == ("torch", tmp_path / "m.pt")
    assert resolve(tmp_path / "m.onnx", " ONNX ") == ("onnx", tmp_path / "m.onnx")
    with pytest.raises(BackendError, match=r"reads \.onnx files.*python -m trainer export"):
        resolve(tmp_path / "m.pt", "onnx")
    with pytest.raises(BackendError, match="reads .pt weights files, not the ONNX file"):
        resolve(tmp_path / "m.onnx", "torch")
    with pytest.raises(CaptchaSettingsError, match=r"CAPTCHA_BACKEND must be one of \('auto', 'onnx', 'torch'\), got 'tensorflow'"):
        resolve(None, "tensorflow")


def test_the_backend_setting_is_checked_at_start_up(tmp_path):
    from scrapy.settings import Settings

    from scrapy_captcha.settings import read_settings

    assert read_settings(Settings({"CAPTCHA_BACKEND": "torch"})).backend == "torch"
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_BACKEND must be one of"):
        read_settings(Settings({"CAPTCHA_BACKEND": "tensorflow"}))
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_BACKEND 'onnx' reads .onnx files"):
        read_settings(Settings({"CAPTCHA_BACKEND": "onnx", "CAPTCHA_WEIGHTS": str(tmp_path / "m.pt")}))


def test_onnx_devices():
    with pytest.raises(BackendError, match="CAPTCHA_DEVICE 'tpu'"):
        OnnxBackend(BUNDLED_ONNX, device="tpu")
    assert isinstance(load_backend(None, "torch"), TorchBackend)


def test_concurrent_solves_share_forward_passes_and_read_as_alone(fixed_set, monkeypatch):
    # The window is long and every good image's preprocessing waits for the others', so all solves
    # are announced before any is submitted: batching is certain however busy the machine is.
    solver = Solver.from_path(batch_window=30.0, max_batch=8)
    data = [image for _, image in fixed_set[:40]] + [b"<html>not an image</html>"]
    expected = Solver.from_path().solve_batch(data[:-1])
    results: dict[int, object] = {}
    start = threading.Barrier(len(data))
    preprocessed = threading.Barrier(len(data) - 1)

    def gated_to_array(*args, **kwargs):
        array = to_array(*args, **kwargs)  # the bad image raises here, before the gate
        preprocessed.wait()
        return array

    monkeypatch.setattr("scrapy_captcha.solver.to_array", gated_to_array)

    def work(index: int) -> None:
        start.wait()
        try:
            results[index] = solver.solve(data[index])
        except InvalidImageError as exc:
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(data))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert isinstance(results[len(data) - 1], InvalidImageError)  # a bad image fails alone
    assert [results[i].text for i in range(len(data) - 1)] == [p.text for p in expected]
    assert [results[i].confidence for i in range(len(data) - 1)] == pytest.approx([p.confidence for p in expected], abs=1e-5)
    sizes = solver._batcher.batch_sizes
    assert sum(sizes) == 40 and max(sizes) == 8, sizes


def test_a_lone_solve_does_not_wait_for_the_window():
    import time

    solver = Solver.from_path(batch_window=60.0)
    data = ImageCaptcha(160, 60).generate("ab3X").getvalue()
    began = time.monotonic()
    solver.solve(data)
    assert time.monotonic() - began < 30.0  # would be at least the 60 s window if a lone solve waited
    assert solver._batcher.batch_sizes == [1]


def test_height_mode_export_reads_any_width(tmp_path):
    bundled = load_weights()
    config = replace(bundled.config, resize="height", max_width=400)
    data = to_onnx_bytes(replace(bundled, config=config))
    path = tmp_path / "height.onnx"
    path.write_bytes(data)
    solver, reference = Solver(load_backend(path)), Solver(replace(bundled, config=config))
    images = [ImageCaptcha(width, 60).generate("aB3x").getvalue() for width in (120, 160, 200, 240)]
    assert [p.text for p in solver.solve_batch(images)] == [p.text for p in reference.solve_batch(images)]


def test_micro_batching_windows():
    from scrapy_captcha.solver import DEFAULT_BATCH_WINDOW

    assert Solver.from_path()._batcher is None  # off unless asked for
    assert Solver.from_path(batch_window=None)._batcher._window == DEFAULT_BATCH_WINDOW  # what the middleware asks for
    assert Solver.from_path(batch_window=0.0)._batcher is None


def test_int8_export_is_a_faster_opt_in_that_reads_almost_the_same(tmp_path, fixed_set):
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for index, (label, image) in enumerate(fixed_set[:60]):
        (calibration / f"{index}-{label}.png").write_bytes(image)
    out, differing = export(None, tmp_path / "int8.onnx", int8=calibration)
    backend = OnnxBackend(out)
    assert backend.config == load_weights().config
    assert backend.summary["quantized"].startswith("int8") and backend.summary["calibration_images"] == 30
    assert out.stat().st_size < BUNDLED_ONNX.stat().st_size / 3  # int8 weights
    assert 0 <= differing <= 0.1
    data = [image for _, image in fixed_set[60:120]]
    same = sum(a.text == b.text for a, b in zip(Solver(backend).solve_batch(data), Solver.from_path().solve_batch(data)))
    assert same >= 54, f"int8 reads {60 - same} of 60 unseen captchas differently from the float model"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="at least 20 images"):
        export(None, tmp_path / "x.onnx", int8=tmp_path / "empty")
    with pytest.raises(ValueError, match="is not a folder"):
        export(None, tmp_path / "x.onnx", int8=tmp_path / "missing")


def test_evaluate_reads_onnx_weights_like_the_pt_file(fixed_set, tmp_path):
    from trainer.evaluate import evaluate

    for index, (label, image) in enumerate(fixed_set[:60]):
        (tmp_path / f"{index}-{label}.png").write_bytes(image)
    through_onnx = evaluate(tmp_path, BUNDLED_ONNX, latency_samples=3)
    through_torch = evaluate(tmp_path, BUNDLED_WEIGHTS, latency_samples=3)
    assert through_onnx["count"] == through_torch["count"] == 60
    assert through_onnx["sequence_accuracy"] == through_torch["sequence_accuracy"] > 0.5
    assert through_onnx["mistakes"] == through_torch["mistakes"]
    assert through_onnx["parameters"] == through_torch["parameters"]
    assert through_onnx["weights"] == str(BUNDLED_ONNX)
