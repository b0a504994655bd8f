"""A CRNN that writes several CTC frames per column of its feature map (``frames_per_column``): its
shapes, its settings, widening a trained model's head (``train --init W --frames-per-column 2``), its
ONNX export, the onnx backend and growing its alphabet."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from scrapy_captcha.model import ModelConfig, build_model, decode
from scrapy_captcha.weights import Weights, load_weights, save_weights
from trainer.export import compare, to_onnx_bytes
from trainer.surgery import grow_alphabet, more_frames_per_column

SMALL = ModelConfig(alphabet="0123456789abc", height=32, resize="height", hidden=16, max_length=8, widths=(8, 8, 16, 16))


def small_weights(frames: int = 1, seed: int = 0) -> Weights:
    torch.manual_seed(seed)
    config = replace(SMALL, frames_per_column=frames)
    model = build_model(config).eval()
    for module in model.modules():  # batch norms with statistics of their own, as a trained model has
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return Weights(config, model.state_dict())


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_the_crnn_writes_frames_per_column_frames_per_stride(frames):
    config = replace(SMALL, frames_per_column=frames)
    model = build_model(config).eval()
    with torch.no_grad():
        for width in (32, 88, 200):
            logits = model(torch.rand(2, 1, 32, width))
            assert logits.shape == (2, config.frames(width), len(config.alphabet) + 1)
            assert config.frames(width) == width // 8 * frames


@pytest.mark.parametrize("changes, message", [
    ({"frames_per_column": 0}, "frames_per_column must be 1 to 4"),
    ({"frames_per_column": 5}, "frames_per_column must be 1 to 4"),
    ({"frames_per_column": 2, "arch": "seed-vgg", "resize": "stretch"}, r"1 unless the architecture is crnn, not 2 \(seed-vgg\)"),
])
def test_bad_frames_per_column_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(SMALL, **changes)


def test_a_settings_file_without_it_has_one_frame_per_column():
    data = SMALL.to_dict()
    del data["frames_per_column"]
    assert ModelConfig.from_dict(data).frames_per_column == 1


def test_a_widened_model_reads_as_before_until_trained():
    weights = small_weights()
    widened = more_frames_per_column(weights, 2)
    assert widened.config.frames_per_column == 2 and weights.config.frames_per_column == 1
    images = torch.rand(6, 1, 32, 96)
    with torch.no_grad():
        before, after = weights.build()(images), widened.build()(images)
    assert torch.equal(after[:, 0::2], before) and torch.equal(after[:, 1::2], before)
    assert [p.text for p in decode(after, widened.config)] == [p.text for p in decode(before, weights.config)]


def test_only_a_one_frame_crnn_is_widened():
    with pytest.raises(ValueError, match="only a CRNN with one frame per column can be widened to 3, not a crnn with 2"):
        more_frames_per_column(small_weights(2), 3)


def test_widening_survives_a_round_trip_through_a_weights_file(tmp_path):
    widened = more_frames_per_column(small_weights(), 2)
    path = save_weights(tmp_path / "w.pt", widened.build(), widened.config)
    loaded = load_weights(path)
    assert loaded.config == widened.config
    loaded.build()  # the file's head fits a model of two frames per column


@pytest.mark.parametrize("frames", [2, 3])
def test_the_onnx_export_computes_the_same_frames(frames, tmp_path):
    from scrapy_captcha.backends.onnx_backend import OnnxBackend

    weights = small_weights(frames, seed=frames)
    data = to_onnx_bytes(weights)
    assert compare(weights, data) < 1e-4
    path = tmp_path / "w.onnx"
    path.write_bytes(data)
    backend = OnnxBackend(path)
    assert backend.config == weights.config
    images = torch.rand(2, 1, 32, 120)
    with torch.no_grad():
        expected = weights.build()(images).numpy()
    got = backend.run(images.numpy())
    assert got.shape == expected.shape == (2, 15 * frames, len(SMALL.alphabet) + 1)
    assert abs(got - expected).max() < 1e-4


def test_growing_the_alphabet_grows_each_frame_of_a_column():
    weights = small_weights(2)
    grown, new = grow_alphabet(weights, ["lo2x"])
    assert new == "lox" and grown.config.frames_per_column == 2
    images = torch.rand(3, 1, 32, 64)
    with torch.no_grad():
        before, after = weights.build()(images), grown.build()(images)
    classes = len(SMALL.alphabet) + 1
    assert after.shape == (3, 16, classes + 3)
    assert torch.allclose(after[..., :classes], before)  # every frame keeps its classes' logits


def test_drops_are_counted_by_the_character_a_reading_lacks():
    from benchmarks.narrow_drops import count_drops, dropped

    assert dropped("aIb3", "ab3") == "I" and dropped("aab", "ab") == "a" and dropped("ab", "ba") is None
    assert dropped("abc", "ab") == "c" and dropped("abc", "abc") is None and dropped("abc", "a") is None
    figures = count_drops(["aIb3", "xl2", "QeeI", "ab", "Ab"], ["ab3", "xl2", "Qe", "abc", "ab"])
    assert figures == {"images": 5, "case_sensitive": 0.2, "any_case": 0.4, "too_short": 2, "too_long": 1,
                       "narrow_characters": 3, "other_characters": 12, "narrow_dropped": 1, "other_dropped": 0}


def test_the_narrow_drops_benchmark_reads_a_folder_with_each_model(tmp_path, capsys):
    import json
    import random

    from benchmarks.narrow_drops import main
    from trainer.render import TextSpec, build_drawer

    drawer, rng = build_drawer("plain", TextSpec("0123456789abcdef", (4, 5), narrow=1.0), difficulty=0.3), random.Random(1)
    folder = tmp_path / "narrow"
    folder.mkdir()
    for index in range(1, 7):
        image, label = drawer.draw(rng)
        image.save(folder / f"{index}-{label}.png")
    assert main(["--data", str(folder), "--weights", "default", "generalist", "--out", str(tmp_path / "drops.json")]) == 0
    figures = json.loads((tmp_path / "drops.json").read_text())["weights"]
    assert set(figures) == {"default", "generalist"}
    assert all(f["read"]["images"] == 6 and f["read"]["narrow_dropped"] <= f["read"]["too_short"] for f in figures.values())
    assert "generalist (read): " in capsys.readouterr().out
    assert main(["--data", str(folder), "--weights", "generalist", "--beam", "4", "--limit", "3", "--out", str(tmp_path / "b.json")]) == 0
    figures = json.loads((tmp_path / "b.json").read_text())["weights"]["generalist"]
    assert set(figures) == {"greedy", "beam 4"} and figures["greedy"]["images"] == figures["beam 4"]["images"] == 3


def test_the_beam_search_finds_the_text_of_most_probability_over_its_alignments():
    import numpy as np

    from benchmarks.narrow_drops import prefix_beam_search

    # greedy reads blank, blank: "" (0.3025); "a" has three alignments (aa, a-, -a): 0.6975
    assert prefix_beam_search(np.log(np.array([[0.55, 0.45], [0.55, 0.45]])), "a") == "a"
    # a blank between two a's makes two characters, none makes one
    assert prefix_beam_search(np.log(np.array([[0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]])), "ab") == "aa"
    assert prefix_beam_search(np.log(np.array([[0.01, 0.98, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]])), "ab") == "ab"
