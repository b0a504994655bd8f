"""The bundled weights read fresh captchas of the seed's task (captcha 0.7.1, 160x60, 4 characters from the
seed's pool) with an accuracy floor that a working model passes and a broken one cannot."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from captcha.image import ImageCaptcha

from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.solver import Solver
from scrapy_captcha.weights import BUNDLED_WEIGHTS, Weights, load_weights
from trainer import cli

COUNT = 200
FLOOR = 0.90  # whole-captcha accuracy, case-insensitive

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """200 captchas drawn now, exactly as the seed notebook draws them, saved as ``{index}-{label}.png``."""
    folder = tmp_path_factory.mktemp("fresh")
    rng = random.Random(2024)
    generator = ImageCaptcha(width=160, height=60)  # captcha 0.7.1 draws from `secrets`: new images every run
    for index in range(1, COUNT + 1):
        label = "".join(rng.choice(SEED_ALPHABET) for _ in range(4))
        generator.write(label, str(folder / f"{index}-{label}.png"))
    return folder


def read_all(solver: Solver, folder: Path) -> tuple[float, float]:
    """(case-sensitive, case-insensitive) whole-captcha accuracy of ``solver`` on ``folder``."""
    paths = sorted(folder.iterdir())
    truth = [path.stem.split("-", 1)[1] for path in paths]
    predicted = []
    for start in range(0, len(paths), 50):
        predicted += [p.text for p in solver.solve_batch([path.read_bytes() for path in paths[start:start + 50]])]
    exact = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    folded = sum(p.lower() == t.lower() for p, t in zip(predicted, truth)) / len(truth)
    return exact, folded


def test_bundled_file_is_small_safe_and_describes_the_seed_task():
    assert BUNDLED_WEIGHTS.stat().st_size <= 8 * 1024 * 1024
    assert torch.load(BUNDLED_WEIGHTS, map_location="cpu", weights_only=True)["format"] == "scrapy-captcha-weights"
    weights = load_weights()
    config = weights.config
    assert (config.width, config.height) == (160, 60)
    assert set(SEED_ALPHABET) <= set(config.alphabet)
    assert config.max_length >= 4
    assert weights.summary.get("trained_with") == "scrapy-captcha trainer"


def test_bundled_model_reads_fresh_captchas(fresh):
    exact, folded = read_all(Solver.from_path(), fresh)
    assert folded >= FLOOR, f"bundled model: {folded:.1%} case-insensitive ({exact:.1%} exact) on {COUNT} fresh captchas"


def test_a_broken_model_fails_the_same_floor(fresh):
    weights = load_weights()
    generator = torch.Generator().manual_seed(0)
    shuffled = {name: tensor.flatten()[torch.randperm(tensor.numel(), generator=generator)].view_as(tensor)
                if tensor.is_floating_point() else tensor for name, tensor in weights.state_dict.items()}
    _, folded = read_all(Solver(Weights(weights.config, shuffled, weights.summary)), fresh)
    assert folded < FLOOR


def test_evaluate_uses_the_bundled_model_by_default(fresh, tmp_path, capsys):
    report = tmp_path / "bundled.json"
    assert cli.main(["evaluate", "--data", str(fresh), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["weights"] == str(BUNDLED_WEIGHTS)
    assert result["count"] == COUNT
    assert result["sequence_accuracy_case_insensitive"] >= FLOOR, capsys.readouterr().out
    assert result["sequence_accuracy"] <= result["sequence_accuracy_case_insensitive"]
    assert result["character_accuracy"] >= FLOOR
