"""Weights files: a faithful round trip, and a clear refusal of anything else, without running its code."""

import io
import os
import pickle
import stat
import zipfile

import pytest
import torch
from PIL import Image

from scrapy_captcha.model import ModelConfig, build_model
from scrapy_captcha.solver import Solver
from scrapy_captcha.weights import FORMAT, VERSION, WeightsError, load_weights, save_weights

CONFIG = ModelConfig(alphabet="0123456789abc", max_length=6, case_sensitive=False, hidden=32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(CONFIG).eval()
    path = save_weights(tmp_path_factory.mktemp("weights") / "nested" / "model.pt", model, CONFIG, {"note": "test", "epoch": 3})
    return path, model


def payload(**changes):
    data = {"format": FORMAT, "version": VERSION, "config": CONFIG.to_dict(),
            "state_dict": build_model(CONFIG).state_dict(), "summary": {}}
    data.update(changes)
    return data


def test_round_trip_gives_identical_outputs(saved):
    path, model = saved
    weights = load_weights(path)
    assert weights.config == CONFIG
    assert weights.summary == {"note": "test", "epoch": 3}
    loaded = weights.build()
    assert not loaded.training
    images = torch.rand(3, 1, 60, 160)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    # and the file is plain data: torch's safe loader reads it on its own
    assert torch.load(path, weights_only=True)["format"] == FORMAT


def test_round_trip_of_the_seed_network(tmp_path):
    config = ModelConfig(arch="seed-vgg", max_length=4)
    model = build_model(config).eval()
    weights = load_weights(save_weights(tmp_path / "vgg.pt", model, config))
    images = torch.rand(2, 1, 60, 160)
    with torch.no_grad():
        assert torch.equal(weights.build()(images), model(images))


def test_other_convolution_widths_round_trip(tmp_path):
    config = ModelConfig(alphabet="0123456789abc", max_length=6, hidden=32, widths=(8, 16, 24, 24))
    model = build_model(config).eval()
    assert model.features[0].out_channels == 8 and model.project[0].in_features == 24 * (60 // 8)
    weights = load_weights(save_weights(tmp_path / "narrow.pt", model, config))
    assert weights.config.widths == (8, 16, 24, 24)
    images = torch.rand(2, 1, 60, 160)
    with torch.no_grad():
        assert torch.equal(weights.build()(images), model(images))


def test_a_file_from_before_widths_were_a_setting_gets_the_old_widths(tmp_path):
    config = ModelConfig(alphabet="0123456789abc", max_length=6, hidden=32)
    older = {key: value for key, value in config.to_dict().items() if key != "widths"}
    path = tmp_path / "older.pt"
    torch.save(payload(config=older, state_dict=build_model(config).state_dict()), path)
    assert load_weights(path).config.widths == (32, 48, 96, 128, 128)


@pytest.mark.parametrize("widths", [(8, 16), (8, 0, 16)])
def test_unusable_widths_are_refused(widths):
    with pytest.raises(ValueError, match="widths must be at least three positive"):
        ModelConfig(widths=widths)


def test_solver_reads_a_saved_file(saved):
    path, _ = saved
    solver = Solver.from_path(path)
    predictions = solver.solve_batch([_png(), _png()])
    assert len(predictions) == 2
    assert set("".join(p.text for p in predictions)) <= set(CONFIG.alphabet)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (160, 60), 255).save(buffer, "PNG")
    return buffer.getvalue()


def test_saved_file_is_readable_by_others_and_leaves_no_temporary_files(saved):
    path, _ = saved
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, "mkstemp's private 0600 must not stick"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_failed_save_keeps_the_old_file(saved, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(saved[0].read_bytes())
    with pytest.raises(Exception, match="lambda"):  # fails halfway through writing
        save_weights(path, build_model(CONFIG), CONFIG, {"unpicklable": lambda: 0})
    assert load_weights(path).summary == {"note": "test", "epoch": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


class _Malicious:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_malicious(path, marker, wrapped: bool):
    evil = _Malicious(marker)
    if wrapped:  # a real scrapy-captcha payload with one poisoned entry
        torch.save(payload(summary={"innocent": evil}), path)
    else:
        path.write_bytes(pickle.dumps(evil, protocol=2))  # the protocol torch.load's reader speaks


@pytest.mark.parametrize("wrapped", [True, False], ids=["torch-zip", "raw-pickle"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, wrapped):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    write_malicious(path, marker, wrapped)
    with pytest.raises(WeightsError, match="refused to load") as info:
        load_weights(path)
    assert str(path) in str(info.value)
    assert not marker.exists(), "loading a weights file ran code from it"
    with pytest.raises(WeightsError):
        Solver.from_path(path)
    assert not marker.exists()


def _foreign_files(tmp_path, saved_path):
    good = saved_path.read_bytes()
    torch.save(build_model(CONFIG).state_dict(), tmp_path / "plain_state_dict.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with zipfile.ZipFile(tmp_path / "random.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    (tmp_path / "notes.txt").write_text("these are not weights\n")
    (tmp_path / "nonsense.txt").write_text("not weights")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "tail_cut.pt").write_bytes(good[:-100])
    corrupt = bytearray(good)
    corrupt[40:4000] = os.urandom(3960)
    (tmp_path / "corrupt.pt").write_bytes(bytes(corrupt))
    torch.save(payload(version=VERSION + 1), tmp_path / "future.pt")
    torch.save(payload(config={**CONFIG.to_dict(), "colour_space": "lab"}), tmp_path / "unknown_setting.pt")
    torch.save(payload(config={**CONFIG.to_dict(), "arch": "transformer"}), tmp_path / "unknown_arch.pt")
    torch.save({k: v for k, v in payload().items() if k != "state_dict"}, tmp_path / "no_state_dict.pt")
    torch.save(payload(state_dict=[1, 2]), tmp_path / "state_dict_list.pt")
    return {
        "plain_state_dict.pt": "not a scrapy-captcha weights file",
        "list.pt": "not a scrapy-captcha weights file",
        "random.zip": "not a readable PyTorch file",
        "notes.txt": "not a readable PyTorch file",
        "nonsense.txt": "not a readable PyTorch file",
        "empty.pt": "not a readable PyTorch file",
        "truncated.pt": "not a readable PyTorch file",
        "tail_cut.pt": "not a readable PyTorch file",
        "corrupt.pt": "not a readable PyTorch file|refused to load",
        "future.pt": f"version {VERSION + 1} is not supported",
        "unknown_setting.pt": "damaged model settings: .*colour_space",
        "unknown_arch.pt": "damaged model settings: .*transformer",
        "no_state_dict.pt": "damaged model settings: .*state_dict",
        "state_dict_list.pt": "not a mapping of names to tensors",
        "missing.pt": "does not exist",
        ".": "is a folder",
    }


def test_foreign_damaged_and_missing_files_are_refused_by_name(tmp_path, saved):
    for name, message in _foreign_files(tmp_path, saved[0]).items():
        path = tmp_path / name
        with pytest.raises(WeightsError, match=message) as info:
            load_weights(path)
        assert str(path) in str(info.value), name
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "other, message",
    [
        (ModelConfig(alphabet="0123456789abc", max_length=6, hidden=64), r"project.0.weight is \(64, 896\), expected \(32, 896\)"),
        (ModelConfig(alphabet="0123456789", max_length=6, hidden=32), r"classify.weight is \(11, 64\), expected \(14, 64\)"),
        (ModelConfig(arch="seed-vgg", alphabet="0123456789abc", max_length=6), "missing .*layer1.0.weight"),
        (ModelConfig(alphabet="0123456789abc", max_length=6, hidden=32, widths=(24, 32, 64, 96, 96)),
         r"features.0.weight is \(24, 1, 3, 3\), expected \(32, 1, 3, 3\)"),
    ],
    ids=["wider", "smaller-alphabet", "other-arch", "other-widths"],
)
def test_state_dict_that_does_not_fit_the_settings_is_refused(tmp_path, other, message):
    path = tmp_path / "misfit.pt"
    torch.save(payload(state_dict=build_model(other).state_dict()), path)
    with pytest.raises(WeightsError, match=message) as info:
        load_weights(path)
    text = str(info.value)
    assert str(path) in text and "do not fit a 'crnn' model" in text
