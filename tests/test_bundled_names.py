"""Bundled models by name: ``CAPTCHA_WEIGHTS = "generalist"`` (or ``--weights generalist``) picks a model
shipped in the package, in both forms (.pt for torch, .onnx for onnxruntime; test_backends checks
that each .onnx gives its .pt's logits)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.settings import Settings

from scrapy_captcha.backends import resolve
from scrapy_captcha.settings import read_settings
from scrapy_captcha.weights import BUNDLED_DIR, BUNDLED_WEIGHTS, WeightsError, bundled_models, load_weights, weights_path

NAMES = bundled_models()


def test_default_comes_first_and_every_model_ships_in_both_forms():
    assert NAMES[0] == "default"
    for name in NAMES:
        assert (BUNDLED_DIR / f"{name}.pt").is_file() and (BUNDLED_DIR / f"{name}.onnx").is_file(), name


def test_a_name_is_a_bundled_model_and_anything_else_a_path(tmp_path, monkeypatch):
    assert weights_path(None) == weights_path("") == weights_path("default") == BUNDLED_WEIGHTS
    for name in NAMES:
        assert weights_path(name) == BUNDLED_DIR / f"{name}.pt"
        assert weights_path(Path(name)) == BUNDLED_DIR / f"{name}.pt"  # as the CLI's type=Path gives it
    assert weights_path("runs/x/weights.pt") == Path("runs/x/weights.pt")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").write_bytes(b"a file of that name here")
    assert weights_path("default") == Path("default")  # an existing file wins over a bundled name
    with pytest.raises(WeightsError, match="no-such-model"):
        load_weights("no-such-model")


@pytest.mark.parametrize("name", NAMES)
def test_each_name_resolves_to_onnx_by_default_and_pt_for_torch(name):
    assert resolve(name) == ("onnx", BUNDLED_DIR / f"{name}.onnx")
    assert resolve(name, "torch") == ("torch", BUNDLED_DIR / f"{name}.pt")
    assert resolve(BUNDLED_DIR / f"{name}.pt") == ("onnx", BUNDLED_DIR / f"{name}.onnx")
    settings = read_settings(Settings({"CAPTCHA_WEIGHTS": name}))
    assert settings.weights == BUNDLED_DIR / f"{name}.pt"
