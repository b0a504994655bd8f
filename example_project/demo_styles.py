"""Captcha styles of the demo site that the bundled model was NOT trained on.

The bundled model learned from the ``captcha`` package's drawing and our own renderer; these are
separate Pillow code written for the demo of ``python -m example_project.demo --adapt`` and for
``benchmarks/adapt.py``, and no training recipe uses them: they stand for "a site whose captchas
look different", the case where recording and adapting pay off.

* ``"ribbon"``: the monospace font file that the ``captcha`` package ships, but laid out by this
  code: each character tilted and shifted, a wavy ribbon and speckles behind, drawn wide and
  squeezed; the bundled model reads some of them (about a quarter on the first try).
* ``"night"``: light characters on a dark, noisy band, letters crowded together; the bundled
  model reads almost none (the case for labelling by hand).

Each style is a function ``(text, rng) -> PNG bytes`` of 160x60 images; the fonts come with Pillow
and the ``captcha`` package, so nothing is downloaded.
"""

from __future__ import annotations

import io
import math
import random
from functools import lru_cache
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter, ImageFont

WIDTH, HEIGHT = 160, 60


@lru_cache(maxsize=16)
def _font(size: int, family: str = "pillow") -> ImageFont.FreeTypeFont:
    if family == "droid":  # the font file the `captcha` package ships (the demo site needs that package anyway)
        import captcha

        return ImageFont.truetype(str(Path(captcha.__file__).with_name("data") / "DroidSansMono.ttf"), size)
    return ImageFont.load_default(size=size)  # Pillow's own TrueType font (Pillow >= 10.1)


def _glyph(char: str, font: ImageFont.FreeTypeFont, colour: tuple[int, ...], angle: float) -> Image.Image:
    left, top, right, bottom = font.getbbox(char)
    glyph = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text((4 - left, 4 - top), char, font=font, fill=colour)
    return glyph.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def _paste_text(image: Image.Image, text: str, rng: random.Random, colours: Callable[[], tuple[int, ...]],
                sizes: tuple[int, int], angle: float, spacing: float, family: str = "pillow") -> None:
    glyphs = [_glyph(c, _font(rng.randint(*sizes), family), colours(), rng.uniform(-angle, angle)) for c in text]
    total = sum(g.width for g in glyphs) * spacing
    x = (image.width - total) / 2 + rng.uniform(-6, 6)
    for glyph in glyphs:
        y = (image.height - glyph.height) / 2 + rng.uniform(-5, 5)
        image.paste(glyph, (int(x), int(y)), glyph)
        x += glyph.width * spacing


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def ribbon(text: str, rng: random.Random) -> bytes:
    """Tilted monospace characters over a wavy ribbon and speckles, drawn wide and squeezed to 160x60."""
    canvas = 215
    image = Image.new("RGB", (canvas, HEIGHT), (rng.randint(225, 255), rng.randint(225, 255), rng.randint(215, 250)))
    draw = ImageDraw.Draw(image)
    for _ in range(150):
        draw.point((rng.randrange(canvas), rng.randrange(HEIGHT)), fill=(rng.randint(120, 200),) * 3)
    phase, amplitude, centre = rng.uniform(0, math.tau), rng.uniform(6, 12), rng.uniform(26, 34)
    ribbon_colour = (rng.randint(170, 215), rng.randint(190, 230), rng.randint(200, 240))
    for x in range(canvas):
        y = centre + amplitude * math.sin(phase + x / 22)
        draw.line([(x, y - 4), (x, y + 4)], fill=ribbon_colour)

    def colour() -> tuple[int, ...]:
        return (rng.randint(10, 90), rng.randint(10, 90), rng.randint(40, 140), 255)

    _paste_text(image, text, rng, colour, (52, 60), 22, 0.82, family="droid")
    return _png(image.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR))


def night(text: str, rng: random.Random) -> bytes:
    """Light, crowded characters on a dark noisy band."""
    base = rng.randint(20, 60)
    noise = Image.effect_noise((WIDTH, HEIGHT), 40).point(lambda v: base + v // 4)
    image = Image.merge("RGB", (noise, noise, noise.point(lambda v: min(255, v + 30))))

    def colour() -> tuple[int, ...]:
        level = rng.randint(190, 250)
        return (level, level, rng.randint(160, 250), 255)

    _paste_text(image, text, rng, colour, (34, 42), 30, 0.68)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        draw.arc([rng.randint(-40, 80), rng.randint(-20, 30), rng.randint(100, 200), rng.randint(40, 90)],
                 rng.randint(0, 180), rng.randint(180, 360), fill=(200, 200, 220), width=2)
    return _png(image.filter(ImageFilter.SMOOTH))


STYLES: dict[str, Callable[[str, random.Random], bytes]] = {"ribbon": ribbon, "night": night}
