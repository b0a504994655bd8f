"""Clutter drawn behind or across the text: lines, arcs, curves, dots, speckle, grids and shapes.

Each function draws onto an RGB image in place; ``amount`` in [0, 1] scales how much.
"""

from __future__ import annotations

import math
import random
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from .paint import Palette

Colour = tuple[int, int, int]


def lines(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    draw, (w, h) = ImageDraw.Draw(image), image.size
    for _ in range(rng.randint(1, 1 + round(4 * amount))):
        start = (rng.uniform(-0.1, 0.3) * w, rng.uniform(0, h))
        end = (rng.uniform(0.7, 1.1) * w, rng.uniform(0, h))
        draw.line([start, end], fill=colour(), width=rng.randint(1, max(1, round(h / 25))))


def arcs(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    draw, (w, h) = ImageDraw.Draw(image), image.size
    for _ in range(rng.randint(1, 1 + round(3 * amount))):
        x0, y0 = rng.uniform(-0.5, 0.5) * w, rng.uniform(-0.5, 0.5) * h
        box = [x0, y0, x0 + rng.uniform(0.5, 1.5) * w, y0 + rng.uniform(0.6, 2.0) * h]
        start = rng.uniform(0, 360)
        draw.arc(box, start, start + rng.uniform(60, 300), fill=colour(), width=rng.randint(1, max(1, round(h / 20))))


def curves(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    """Wavy lines across the whole width, through the text."""
    draw, (w, h) = ImageDraw.Draw(image), image.size
    for _ in range(rng.randint(1, 1 + round(2 * amount))):
        centre, amplitude = rng.uniform(0.3, 0.7) * h, rng.uniform(0.05, 0.3) * h
        period, phase, slope = rng.uniform(0.3, 1.5) * w, rng.uniform(0, 2 * math.pi), rng.uniform(-0.2, 0.2) * h / w
        points = [(x, centre + slope * (x - w / 2) + amplitude * math.sin(2 * math.pi * x / period + phase))
                  for x in range(-2, w + 3, max(2, w // 40))]
        draw.line(points, fill=colour(), width=rng.randint(1, max(1, round(h / 22))), joint="curve")


def dots(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    draw, (w, h) = ImageDraw.Draw(image), image.size
    count = round(w * h / 400 * (0.1 + amount) * rng.uniform(0.3, 1.0))
    fixed = colour() if rng.random() < 0.5 else None
    for _ in range(count):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.5, max(1.0, h / 30))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fixed or colour())


def speckle(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    """Single pixels of salt and pepper."""
    pixels = np.asarray(image).copy()
    arr_rng = np.random.default_rng(rng.getrandbits(32))
    hits = arr_rng.random(pixels.shape[:2]) < rng.uniform(0.005, 0.01 + 0.04 * amount)
    pixels[hits] = np.asarray([colour() for _ in range(3)], dtype=np.uint8)[arr_rng.integers(0, 3, int(hits.sum()))]
    image.paste(Image.fromarray(pixels, "RGB"))


def grid(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    draw, (w, h) = ImageDraw.Draw(image), image.size
    step = rng.uniform(0.15, 0.5) * h
    fill, width = colour(), 1
    offset = rng.uniform(0, step)
    for x in np.arange(offset, w, step * rng.uniform(0.8, 1.5)):
        draw.line([(x, 0), (x, h)], fill=fill, width=width)
    if rng.random() < 0.7:
        for y in np.arange(offset, h, step):
            draw.line([(0, y), (w, y)], fill=fill, width=width)


def shapes(image: Image.Image, rng: random.Random, amount: float, colour: Callable[[], Colour]) -> None:
    """Circles, ellipses and rectangles, outlined or filled."""
    draw, (w, h) = ImageDraw.Draw(image), image.size
    for _ in range(rng.randint(1, 2 + round(6 * amount))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.03, 0.25) * w, rng.uniform(0.1, 0.5) * h
        box = [x - rx, y - ry, x + rx, y + ry]
        filled = rng.random() < 0.4
        paint = draw.ellipse if rng.random() < 0.6 else draw.rectangle
        if filled:
            paint(box, fill=colour())
        else:
            paint(box, outline=colour(), width=rng.randint(1, max(1, round(h / 25))))


def tangle(image: Image.Image, rng: random.Random, amount: float, ink: Colour, width: int) -> None:
    """Lines, arcs and rings in the text's own ink and stroke weight, across the text: clutter that only a
    glyph's shape, never its colour or weight, tells from the text."""
    draw, (w, h) = ImageDraw.Draw(image), image.size
    for _ in range(rng.randint(2, 3 + round(3 * amount))):
        roll, stroke = rng.random(), max(1, round(width * rng.uniform(0.4, 1.2)))
        if roll < 0.35:  # a straight stroke, short or across the image
            x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(0, h)
            length, angle = rng.uniform(0.1, 1.0) * w, rng.uniform(-0.6, 0.6)
            draw.line([(x0, y0), (x0 + length * math.cos(angle), y0 + length * math.sin(angle))], fill=ink, width=stroke)
        else:  # a ring or an arc of one, about a glyph's size to a few glyphs' wide
            x, y = rng.uniform(0, w), rng.uniform(0.1, 0.9) * h
            rx, ry = rng.uniform(0.04, 0.3) * w, rng.uniform(0.1, 0.45) * h
            start = rng.uniform(0, 360)
            sweep = 360 if roll < 0.65 else rng.uniform(90, 300)
            draw.arc([x - rx, y - ry, x + rx, y + ry], start, start + sweep, fill=ink, width=stroke)


#: Clutter that goes behind the text only (it could hide glyphs entirely if drawn over them).
BEHIND = (grid, shapes)
#: Clutter that may also go over the text.
ACROSS = (lines, arcs, curves, dots, speckle)


def add_clutter(image: Image.Image, rng: random.Random, difficulty: float, palette: Palette, layer: str) -> None:
    """Draw the ``layer`` ("behind" or "across") clutter for one image; more kinds and more of each with difficulty."""
    kinds = BEHIND if layer == "behind" else ACROSS
    chance = (0.25 if layer == "behind" else 0.15) + 0.55 * difficulty
    faint = (palette.contrast[0] * 0.1, palette.contrast[0] * 0.45)  # far nearer the background than any ink
    for kind in kinds:
        if rng.random() >= chance / len(kinds) * 2:
            continue
        if layer == "behind":  # behind the text: fainter than the ink, so the text stays on top
            kind(image, rng, difficulty, lambda: palette_colour(rng, palette, faint))
        else:
            kind(image, rng, difficulty, lambda: palette.ink(rng))


def palette_colour(rng: random.Random, palette: Palette, contrast: tuple[float, float]) -> Colour:
    from .paint import colour_with_contrast

    return colour_with_contrast(rng, palette.background, *contrast)
