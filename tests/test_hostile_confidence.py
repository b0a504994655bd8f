"""The default CAPTCHA_MIN_CONFIDENCE floor: it refuses answers to images nothing like a captcha,
and never a real captcha's, read through the middleware's own path (``read_answer``).

Run as a script to measure a labelled folder (``{index}-{label}.png``), e.g. the 2000 images of
``make data/test-0.7.1``::

    .venv/bin/python -m tests.test_hostile_confidence data/test-0.7.1
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scrapy_captcha import BUNDLED_WEIGHTS
from scrapy_captcha.settings import DEFAULT_MIN_CONFIDENCE

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def noise_image(seed: int) -> bytes:
    """A 160x60 image of uniform grey noise, the same for a seed."""
    return _png(Image.fromarray(np.random.default_rng(seed).integers(0, 256, (60, 160), dtype=np.uint8)))


def junk_images() -> dict[str, bytes]:
    """Images nothing like a captcha: a model reads no text in them, or some text with low confidence."""
    return {"black": _png(Image.new("L", (160, 60), 0)), "noise": noise_image(0)}


def test_the_floor_refuses_junk_and_keeps_real_captchas(one_thread):
    from captcha.image import ImageCaptcha

    from scrapy_captcha import Solver
    from scrapy_captcha.codec import SEED_ALPHABET
    from scrapy_captcha.solver import read_answer

    solver = Solver.from_path()
    blank, _ = read_answer(solver, None, junk_images()["black"])
    # never answered: the middleware submits no empty text and nothing below the floor
    assert not blank.text or blank.confidence < DEFAULT_MIN_CONFIDENCE, blank
    # uniform noise: the bundled model learnt to read nothing there (junk images labelled empty in its
    # training; README "Security"), so none of 50 is answered
    answered = []
    for seed in range(50):
        prediction, _ = read_answer(solver, None, noise_image(seed))
        if prediction.text and prediction.confidence >= DEFAULT_MIN_CONFIDENCE:
            answered.append((seed, prediction.text, round(prediction.confidence, 3)))
    assert not answered, answered
    draw, rng = ImageCaptcha(160, 60), random.Random(10)
    confidences = []
    for _ in range(100):
        text = "".join(rng.choice(SEED_ALPHABET) for _ in range(4))
        prediction, _ = read_answer(solver, None, draw.generate(text).getvalue())
        confidences.append(prediction.confidence)
    assert min(confidences) > DEFAULT_MIN_CONFIDENCE, sorted(confidences)[:5]


def measure(folder: Path) -> None:
    """Print the confidence range of the bundled model on a labelled folder, and on the junk images."""
    import torch

    from scrapy_captcha import Solver
    from scrapy_captcha.answers import answer_rules
    from scrapy_captcha.solver import read_answer

    torch.set_num_threads(1)
    solver = Solver.from_path()
    paths = sorted(folder.glob("*.png"))
    for case in ("as-is", "lower"):
        rules = answer_rules(solver.config, case, None)
        confidences = sorted(read_answer(solver, rules, path.read_bytes())[0].confidence for path in paths)
        below = sum(c < DEFAULT_MIN_CONFIDENCE for c in confidences)
        print(f"{folder} ({len(paths)} images), CAPTCHA_ANSWER_CASE {case}: lowest confidence {confidences[0]:.4f}, "
              f"1st percentile {confidences[len(confidences) // 100]:.4f}, median {confidences[len(confidences) // 2]:.4f}; "
              f"{below} below the floor {DEFAULT_MIN_CONFIDENCE}")
    for name, data in junk_images().items():
        prediction, _ = read_answer(solver, None, data)
        print(f"junk image {name}: read {prediction.text!r} with confidence {prediction.confidence:.4f}")


if __name__ == "__main__":
    measure(Path(sys.argv[1]))
