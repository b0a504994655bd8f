"""Our own style-randomised captchas on Pillow (families ``styled``, ``plain`` and ``scattered``).

One image is drawn in five steps, each randomised and scaled by ``difficulty``: palette and
background; clutter behind the text; the text (fonts, sizes, rotation, spacing, fill); clutter
across it; geometry (sine, elastic, shear, perspective) and finish (blur, noise, JPEG). The canvas
is sized around the text, so a label is never cut off, then kept within 60x20..640x360 and aspect
ratios 1.5..8. The ``scattered`` family is the same with characters that tumble and scatter
(:class:`ScatteredRenderer`); ``tangled`` adds clutter in the text's own ink and stroke weight
(:class:`TangledRenderer`); ``pastel`` gives each character its own colour, some barely off a light
background (:class:`PastelRenderer`).
"""

from __future__ import annotations

import io
import random
from dataclasses import replace

import numpy as np
from PIL import Image, ImageFilter

from .base import RandomTextMixin
from .clutter import add_clutter, tangle
from .fonts import FontSet
from .layout import TextLayer, TextStyle, lay_out, pick_scattered_style, pick_style
from .paint import Palette, background, pick_palette, random_colour
from .warp import mesh_warp, perspective

MIN_SIZE = (60, 20)
MAX_SIZE = (640, 360)
ASPECT = (1.5, 8.0)


def font_size(rng: random.Random, difficulty: float) -> int:
    """Mostly small text (small captchas are the common case and the fast one), sometimes large."""
    roll = rng.random()
    if roll < 0.7:
        return rng.randint(16, 40)
    if roll < 0.93:
        return rng.randint(40, 64)
    return rng.randint(64, 110)


def canvas_size(text_size: tuple[int, int], rng: random.Random, margin: float) -> tuple[int, int]:
    """A canvas the text fills all of or only part of, within the size and aspect limits."""
    tw, th = text_size
    roll = rng.random()
    if roll < 0.15:  # text edge to edge, glyphs touching the image's borders
        fill_x, fill_y = rng.uniform(0.9, 1.0), rng.uniform(0.86, 1.0)
    elif roll < 0.83:
        fill_x, fill_y = rng.uniform(0.7, 0.95), rng.uniform(0.45, 0.85)
    else:  # text in a corner of a larger image
        fill_x, fill_y = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.5)
    fill_x, fill_y = min(fill_x, 1 - margin), min(fill_y, 1 - 2 * margin)
    width, height = tw / fill_x, th / fill_y
    aspect = width / height
    if aspect < ASPECT[0]:
        width = height * ASPECT[0]
    elif aspect > ASPECT[1]:
        height = width / ASPECT[1]
    return max(MIN_SIZE[0], round(width)), max(MIN_SIZE[1], round(height))


def fit_limits(image: Image.Image) -> Image.Image:
    """Scale an over-large canvas down (keeping its aspect ratio) to within :data:`MAX_SIZE`."""
    scale = min(MAX_SIZE[0] / image.width, MAX_SIZE[1] / image.height, 1.0)
    if scale < 1.0:
        size = (max(MIN_SIZE[0], round(image.width * scale)), max(MIN_SIZE[1], round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image


def finish(image: Image.Image, rng: random.Random, difficulty: float) -> Image.Image:
    """Blur, sensor noise and JPEG artefacts, each now and then."""
    if rng.random() < 0.1 + 0.2 * difficulty:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.6 + 0.6 * difficulty)))
    if rng.random() < 0.1 + 0.2 * difficulty:
        arr_rng = np.random.default_rng(rng.getrandbits(32))
        pixels = np.asarray(image, dtype=np.float32) + arr_rng.normal(0, rng.uniform(3, 6 + 12 * difficulty), (image.height, image.width, 1))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.1:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(30, 85))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


class StyledRenderer(RandomTextMixin):
    """The broad randomiser: every knob of the issue's list, scaled by difficulty."""

    name = "styled"
    clutter = True  # clutter and geometry on; the plain family turns them off

    def __init__(self, fonts: FontSet):
        self.fonts = fonts

    def palette(self, rng: random.Random, difficulty: float) -> Palette:
        return pick_palette(rng, difficulty)

    def text_style(self, rng: random.Random, difficulty: float) -> TextStyle:
        return pick_style(rng, font_size(rng, difficulty), difficulty)

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        difficulty = min(1.0, max(0.0, difficulty))
        palette = self.palette(rng, difficulty)
        style = self.text_style(rng, difficulty)
        layer = lay_out(text, self.fonts, style, palette, rng)
        warped = self.clutter and rng.random() < 0.3 + 0.5 * difficulty
        size = canvas_size(layer.size, rng, margin=0.08 if warped else 0.02)
        image = background(size, palette, rng, difficulty)
        if self.clutter:
            add_clutter(image, rng, difficulty, palette, "behind")
        slack_x, slack_y = size[0] - layer.size[0], size[1] - layer.size[1]
        layer.paint(image, rng.randint(0, max(0, slack_x)) if rng.random() < 0.5 else slack_x // 2,
                    rng.randint(max(0, slack_y) // 4, max(0, slack_y) - max(0, slack_y) // 4) if slack_y > 3 else slack_y // 2)
        if self.clutter:
            add_clutter(image, rng, difficulty, palette, "across")
            self.cross(image, rng, difficulty, layer, style)
        if warped:
            image = mesh_warp(image, rng, difficulty, palette.background)
            if rng.random() < 0.15 + 0.25 * difficulty:
                image = perspective(image, rng, difficulty * 0.6, palette.background)
        return fit_limits(finish(image, rng, difficulty))

    def cross(self, image: Image.Image, rng: random.Random, difficulty: float, layer: TextLayer, style: TextStyle) -> None:
        """More clutter across the painted text, for families that add their own (none here)."""


class PlainRenderer(StyledRenderer):
    """Clean text: one font, dark on light (sometimes light on dark), little or no clutter or warp.

    The easy end of the curriculum, and the plain black-on-white captchas real sites still serve.
    """

    name = "plain"
    clutter = False

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        return super().render(text, rng, difficulty=0.0 if rng.random() < 0.6 else 0.2 * difficulty)

    def palette(self, rng: random.Random, difficulty: float) -> Palette:
        if rng.random() < 0.6:
            return Palette((255, 255, 255), (200, 255), "light")
        return super().palette(rng, difficulty)


class ScatteredRenderer(StyledRenderer):
    """The styled family with tumbling, scattered characters: each rotated by up to 35-80 degrees, on
    baselines that wander up to 45% of the font size, spaced wide or overlapping (:func:`pick_scattered_style`)."""

    name = "scattered"

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        # the whole image at a random share of the difficulty (tumbling and scattering too, within the
        # scattered ranges), so that tumbling characters are not also always buried in clutter and warps
        return super().render(text, rng, difficulty * rng.uniform(0.3, 1.0))

    def text_style(self, rng: random.Random, difficulty: float) -> TextStyle:
        return pick_scattered_style(rng, font_size(rng, difficulty), difficulty)


class TangledRenderer(StyledRenderer):
    """The styled family with lines, arcs and rings drawn in the text's own ink and about its stroke
    weight, through and around the characters (:func:`~trainer.render.clutter.tangle`): the model must
    tell text from clutter by shape alone. Solid, single-coloured text, so the clutter matches it."""

    name = "tangled"

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        # as in the scattered family: the rest of the image at a random share of the difficulty, so the
        # tangle is not also always buried in other clutter and warps
        return super().render(text, rng, difficulty * rng.uniform(0.3, 1.0))

    def text_style(self, rng: random.Random, difficulty: float) -> TextStyle:
        style = super().text_style(rng, difficulty)
        return replace(style, fill="solid", colour_per_char=False, weight=max(0, style.weight))

    def cross(self, image: Image.Image, rng: random.Random, difficulty: float, layer: TextLayer, style: TextStyle) -> None:
        stroke = max(1, round(style.size * rng.uniform(0.06, 0.14)) + style.weight)
        tangle(image, rng, difficulty, layer.glyphs[0].colour, stroke)


class PastelRenderer(StyledRenderer):
    """The styled family on a light background with each character in its own colour, its contrast drawn
    from 30 to 200 luminance levels: some characters strong, some barely off the background."""

    name = "pastel"

    def palette(self, rng: random.Random, difficulty: float) -> Palette:
        return Palette(random_colour(rng, 225, 255) if rng.random() < 0.5 else (255, 255, 255), (30, 200), "pastel")

    def text_style(self, rng: random.Random, difficulty: float) -> TextStyle:
        return replace(super().text_style(rng, difficulty), colour_per_char=True)
