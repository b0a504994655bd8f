"""The ``captcha`` library's styles (families ``0.7``, ``0.5`` and ``mixed``): the seed task's images.

``captcha`` 0.5.0 and 0.7.1 draw glyphs differently: 0.5.0 sizes each glyph box from the ink
bounding box times 1.7 and warps more, so its characters come out thinner and more distorted.
Users' data sets come from both, so :class:`SyntheticCaptcha` can draw either way, picking a style
per image, with the library installed here (0.7.1) doing the rest.
"""

from __future__ import annotations

import random
from typing import Sequence

from captcha.image import ImageCaptcha
from PIL.Image import Image, Resampling, Transform
from PIL.Image import new as new_image
from PIL.ImageDraw import Draw, ImageDraw

from .base import RandomTextMixin

STYLES = ("0.7", "0.5", "mixed")


class SyntheticCaptcha(ImageCaptcha):
    """An :class:`ImageCaptcha` that draws in the style of captcha 0.7.1, 0.5.0, or a mix."""

    def __init__(
        self,
        width: int = 160,
        height: int = 60,
        fonts: Sequence[str] | None = None,
        font_sizes: Sequence[int] | None = None,
        style: str = "0.7",
        rng: random.Random | None = None,
    ):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {style!r}")
        super().__init__(width, height, list(fonts) if fonts else None, tuple(font_sizes) if font_sizes else None)
        self.style = style
        self.rng = rng or random.Random()
        self._image_style = style
        # replaced for every image (generate_image); drawn here too because the saved sets' seeds
        # (data/generalist-test-heavy) were drawn with this first share of self.rng taken
        self._glyph_rng = random.Random(self.rng.getrandbits(64))

    def generate_image(self, chars: str, bg_color=None, fg_color=None) -> Image:
        self._image_style = self.style if self.style != "mixed" else self.rng.choice(("0.7", "0.5"))
        # the library adds a random number of spaces (from `secrets`), each drawn by _draw_character: the
        # 0.5 style's draws come from a source of their own, so that an image takes the same share of
        # self.rng whatever the library did, and the labels and images drawn after it stay repeatable
        self._glyph_rng = random.Random(self.rng.getrandbits(64))
        return super().generate_image(chars, bg_color=bg_color, fg_color=fg_color)

    def _draw_character(self, c: str, draw: ImageDraw, color) -> Image:
        if self._image_style == "0.7":
            return super()._draw_character(c, draw, color)
        return self._draw_character_05(c, draw, color)

    def _draw_character_05(self, c: str, draw: ImageDraw, color) -> Image:
        """captcha 0.5.0's ``_draw_character``, line for line."""
        rng = self._glyph_rng
        font = rng.choice(self.truefonts)
        left, top, right, bottom = draw.textbbox((0, 0), c, font=font)
        w = int((right - left) * 1.7) or 1
        h = int((bottom - top) * 1.7) or 1

        dx1 = rng.randint(0, 4)
        dy1 = rng.randint(0, 6)
        im = new_image("RGBA", (w + dx1, h + dy1))
        Draw(im).text((dx1, dy1), c, font=font, fill=color)

        im = im.crop(im.getbbox())
        im = im.rotate(rng.uniform(-30, 30), Resampling.BILINEAR, expand=True)

        dx2 = w * rng.uniform(0.1, 0.3)
        dy2 = h * rng.uniform(0.2, 0.3)
        x1 = int(rng.uniform(-dx2, dx2))
        y1 = int(rng.uniform(-dy2, dy2))
        x2 = int(rng.uniform(-dx2, dx2))
        y2 = int(rng.uniform(-dy2, dy2))
        w2 = w + abs(x1) + abs(x2)
        h2 = h + abs(y1) + abs(y2)
        data = (x1, y1, -x1, h2 - y2, w2 + x2, h2 + y2, w2 - x2, -y1)
        im = im.resize((w2, h2))
        return im.transform((w, h), Transform.QUAD, data)


class CaptchaLibRenderer(RandomTextMixin):
    """captcha 0.7.1 or 0.5.0 style at the seed's 160x60 (wider for texts over 6 characters).

    ``fonts`` and ``font_sizes`` go to the library (default: its own DejaVu Sans); the curriculum's
    difficulty does not apply: these are the seed styles, drawn as the seed draws them.
    """

    def __init__(self, style: str = "0.7", width: int = 160, height: int = 60, fonts: Sequence[str] = (),
                 font_sizes: Sequence[int] = ()):
        self.name = style
        self.style, self.width, self.height = style, width, height
        self.fonts, self.font_sizes = tuple(fonts), tuple(font_sizes)
        self._generators: dict[tuple[int, int], SyntheticCaptcha] = {}

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image:
        width = max(self.width, round(self.width * len(text) / 6)) if len(text) > 6 else self.width
        generator = self._generators.get((width, id(rng)))
        if generator is None:  # one per width and random source: the library's font cache is per instance
            generator = SyntheticCaptcha(width, self.height, self.fonts or None, self.font_sizes or None, self.style, rng)
            self._generators = {key: g for key, g in self._generators.items() if key[1] == id(rng)}
            self._generators[(width, id(rng))] = generator
        return generator.generate_image(text)
