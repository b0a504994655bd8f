"""The ``junk`` family: images with no text at all, labelled empty.

A model trained on captchas alone reads characters into anything: uniform noise, a blank or
one-colour image, a texture. A share of junk in the training stream teaches it to read nothing
there (all blanks, for a CTC model), so the middleware refuses such an image as unreadable instead
of submitting a guess (README, "Security"). Images are drawn around the spec's size, as the
captchas beside them.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from .base import TextSpec
from .clutter import add_clutter
from .paint import background, pick_palette, random_colour

#: What a junk image is: per-pixel noise, one colour, or a captcha's background and clutter without its text.
KINDS = ("noise", "solid", "background")


class JunkRenderer:
    """Draws text-free images; their label is empty."""

    name = "junk"

    def __init__(self, width: int = 160, height: int = 60):
        self.width, self.height = width, height

    def text(self, rng: random.Random, spec: TextSpec) -> str:
        return ""

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        if text:
            raise ValueError(f"the junk family draws no text, yet was given {text!r}")
        size = (max(8, round(self.width * rng.uniform(0.7, 1.4))), max(8, round(self.height * rng.uniform(0.7, 1.4))))
        kind = rng.choice(KINDS)
        if kind == "noise":
            arr_rng = np.random.default_rng(rng.getrandbits(32))
            channels = 3 if rng.random() < 0.5 else 1
            low = rng.randint(0, 128)
            pixels = arr_rng.integers(low, rng.randint(low + 64, 256), (size[1], size[0], channels), dtype=np.uint8)
            return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, "L" if channels == 1 else "RGB").convert("RGB")
        if kind == "solid":
            return Image.new("RGB", size, random_colour(rng))
        palette = pick_palette(rng, difficulty)
        image = background(size, palette, rng, difficulty)
        add_clutter(image, rng, difficulty, palette, "behind")
        add_clutter(image, rng, difficulty, palette, "across")
        return image
