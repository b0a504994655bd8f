"""Colours and backgrounds for the styled renderers: palettes that stay legible, and the
plain, gradient, textured and noisy backgrounds they draw on."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

RGB = tuple[int, int, int]


def luminance(colour: RGB) -> float:
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


def random_colour(rng: random.Random, low: int = 0, high: int = 255) -> RGB:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def colour_near(rng: random.Random, colour: RGB, spread: int) -> RGB:
    return tuple(min(255, max(0, c + rng.randint(-spread, spread))) for c in colour)  # type: ignore[return-value]


def colour_with_contrast(rng: random.Random, background: RGB, low: float, high: float, tries: int = 40) -> RGB:
    """A colour whose luminance differs from ``background``'s by between ``low`` and ``high``."""
    base = luminance(background)
    sides = [side for side in (-1, 1) if 0 <= base + side * low <= 255]
    for _ in range(tries):
        target = base + rng.choice(sides or [1]) * rng.uniform(low, high)
        colour = random_colour(rng)
        shift = target - luminance(colour)  # move a random hue to the wanted brightness
        colour = (min(255, max(0, round(colour[0] + shift))), min(255, max(0, round(colour[1] + shift))),
                  min(255, max(0, round(colour[2] + shift))))
        if low <= abs(luminance(colour) - base) <= high:
            return colour
    # no luck at random: the grey at the right distance, on the side with room
    target = base - rng.uniform(low, high) if base > 127 else base + rng.uniform(low, high)
    grey = int(min(255, max(0, target)))
    return (grey, grey, grey)


@dataclass(frozen=True)
class Palette:
    """A background colour and how far the ink may be from it."""

    background: RGB
    contrast: tuple[float, float]  # luminance distance of the ink, min and max
    kind: str

    def ink(self, rng: random.Random) -> RGB:
        return colour_with_contrast(rng, self.background, *self.contrast)


def pick_palette(rng: random.Random, difficulty: float) -> Palette:
    """Dark on light mostly; inverted, coloured and low-contrast palettes more often as ``difficulty`` grows."""
    roll = rng.random()
    if roll < 0.45 - 0.2 * difficulty:
        return Palette(random_colour(rng, 215, 255), (120, 255), "light")
    if roll < 0.65 - 0.2 * difficulty:
        return Palette(random_colour(rng, 0, 60), (110, 255), "inverted")
    if roll < 0.85:
        return Palette(random_colour(rng), (90, 255), "coloured")
    return Palette(random_colour(rng, 60, 200), (50, 85), "low-contrast")


def background(size: tuple[int, int], palette: Palette, rng: random.Random, difficulty: float) -> Image.Image:
    """A plain, gradient, textured or noisy RGB background around ``palette.background``."""
    width, height = size
    base = palette.background
    roll = rng.random()
    if roll < 0.5 - 0.25 * difficulty:
        return Image.new("RGB", size, base)
    spread = int(20 + 30 * difficulty)
    other = colour_near(rng, base, spread)
    if roll < 0.7 - 0.15 * difficulty:  # linear gradient at a random angle
        ramp = Image.linear_gradient("L").rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR, fillcolor=128)
        ramp = ramp.resize(size, Image.Resampling.BILINEAR)
        return ImageOps.colorize(ramp, base, other)
    arr_rng = np.random.default_rng(rng.getrandbits(32))
    if roll < 0.88:  # soft blotches: coarse noise, upscaled
        cells = (max(2, width // rng.randint(6, 30)), max(2, height // rng.randint(6, 30)))
        coarse = Image.fromarray(arr_rng.integers(0, 256, (cells[1], cells[0]), dtype=np.uint8), "L")
        texture = coarse.resize(size, Image.Resampling.BICUBIC)
        return ImageOps.colorize(texture, colour_near(rng, base, spread), colour_near(rng, base, spread))
    # per-pixel noise, kept within a band so the palette's contrast still holds
    noise = arr_rng.normal(0.0, 8 + 18 * difficulty, (height, width, 1))
    pixels = np.clip(np.asarray(base, dtype=np.float32)[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")
