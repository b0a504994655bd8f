"""Glyphs and their placement: per-character font, size, rotation, baseline, spacing and overlap,
filled, outlined or hollow, in the font's own stroke weight or made heavier or thinner. Every
character of the label is drawn; a space only advances."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from .fonts import FontSet, load_font
from .paint import RGB, Palette


@dataclass
class Glyph:
    mask: Image.Image  # "L", 255 where the ink is
    x: int
    y: int
    colour: RGB
    outline: Image.Image | None = None  # for outlined glyphs: a second mask drawn in outline_colour
    outline_colour: RGB = (0, 0, 0)


@dataclass
class TextLayer:
    """Glyphs positioned relative to one another; ``box`` is their joint bounding box."""

    glyphs: list[Glyph] = field(default_factory=list)
    box: tuple[int, int, int, int] = (0, 0, 1, 1)

    @property
    def size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    def paint(self, canvas: Image.Image, left: int, top: int) -> None:
        """Draw the glyphs onto ``canvas`` with the layer's top-left corner at (left, top)."""
        dx, dy = left - self.box[0], top - self.box[1]
        for glyph in self.glyphs:
            position = (glyph.x + dx, glyph.y + dy)
            if glyph.outline is not None:
                canvas.paste(glyph.outline_colour, position, glyph.outline)
            canvas.paste(glyph.colour, position, glyph.mask)


@dataclass(frozen=True)
class TextStyle:
    """How one image's text is drawn (chosen once per image)."""

    size: int  # font size in pixels
    spacing: float  # extra advance per character, in font sizes (negative: overlap)
    rotation: float  # largest per-character rotation, degrees
    scale_jitter: float  # per-character size change, share of size
    baseline_jitter: float  # per-character vertical wobble, share of size
    mixed_fonts: bool  # a font per character instead of one per image
    fill: str  # "solid", "outline" (ink with a contour) or "hollow" (contour only)
    stroke: int  # contour width for outline/hollow
    colour_per_char: bool
    weight: int = 0  # solid glyphs: pixels added around each stroke (> 0), or thinned by one pixel (< 0)


def pick_style(rng: random.Random, size: int, difficulty: float) -> TextStyle:
    """A text style; rotations, overlap, mixed fonts and hollow glyphs grow with ``difficulty``."""
    d = difficulty
    fill_roll = rng.random()
    fill = "hollow" if fill_roll < 0.06 + 0.08 * d else "outline" if fill_roll < 0.12 + 0.12 * d else "solid"
    return TextStyle(
        size=size,
        spacing=rng.uniform(-0.08 - 0.17 * d, 0.05 + 0.45 * rng.random()),
        rotation=rng.uniform(0, 5 + 30 * d),
        scale_jitter=rng.uniform(0, 0.05 + 0.25 * d),
        baseline_jitter=rng.uniform(0, 0.03 + 0.2 * d),
        mixed_fonts=rng.random() < 0.1 + 0.25 * d,
        fill=fill,
        stroke=max(1, round(size * rng.uniform(0.03, 0.08))),
        colour_per_char=rng.random() < 0.15 + 0.35 * d,
        weight=pick_weight(rng, size) if fill == "solid" else 0,
    )


def pick_weight(rng: random.Random, size: int) -> int:
    """Most text in its font's own weight; a fifth much heavier (any font made bold, strokes that touch),
    and, where the glyphs are large enough to keep their shape, a tenth thinner."""
    roll = rng.random()
    if roll < 0.2:
        return max(1, round(size * rng.uniform(0.02, 0.06)))
    if roll < 0.3 and size >= 28:
        return -1
    return 0


def pick_scattered_style(rng: random.Random, size: int, difficulty: float) -> TextStyle:
    """A :func:`pick_style` whose characters tumble and scatter: rotations up to 35-80 degrees each,
    baselines wandering up to 45% of the size, wide or overlapping spacing (all growing with ``difficulty``)."""
    style = pick_style(rng, size, difficulty)
    d = difficulty
    return replace(style, rotation=rng.uniform(20 + 15 * d, 35 + 45 * d),
                   baseline_jitter=rng.uniform(0.1 + 0.1 * d, 0.15 + 0.3 * d),
                   spacing=rng.uniform(-0.1 - 0.1 * d, 0.2 + 0.6 * rng.random()))


def _glyph_masks(char: str, font_path: str, size: int, style: TextStyle) -> tuple[Image.Image, Image.Image | None, tuple[int, int, int, int], float]:
    """The char's ink mask (and contour mask), its box relative to the pen on the baseline, and its advance."""
    font = load_font(font_path, size)
    stroke = style.stroke if style.fill != "solid" else 0
    weight = style.weight if style.fill == "solid" else 0
    heavier = max(0, weight)
    left, top, right, bottom = font.getbbox(char, anchor="ls", stroke_width=stroke or heavier)
    pad = 2
    canvas = (right - left + 2 * pad, bottom - top + 2 * pad)
    origin = (pad - left, pad - top)
    ink = Image.new("L", canvas, 0)
    ImageDraw.Draw(ink).text(origin, char, font=font, fill=255, anchor="ls", stroke_width=heavier, stroke_fill=255)
    if weight < 0:
        thinner = ink.filter(ImageFilter.MinFilter(3))
        # a hairline font would lose its strokes altogether: thin only what keeps most of its ink
        if ImageStat.Stat(thinner).sum[0] >= 0.4 * ImageStat.Stat(ink).sum[0]:
            ink = thinner
    contour = None
    if stroke:
        outer = Image.new("L", canvas, 0)
        ImageDraw.Draw(outer).text(origin, char, font=font, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255)
        if style.fill == "hollow":  # the contour alone: the glyph's inside shows the background
            ink = ImageChops.subtract(outer, ink)
        else:
            contour = outer
    return ink, contour, (left - pad, top - pad, right + pad, bottom + pad), font.getlength(char)


def lay_out(text: str, fonts: FontSet, style: TextStyle, palette: Palette, rng: random.Random) -> TextLayer:
    """Place every character of ``text`` (spaces advance the pen only) and return the layer."""
    layer = TextLayer()
    image_font = fonts.choice(rng).path
    ink = palette.ink(rng)
    contour_ink = palette.ink(rng)
    pen = 0.0
    boxes = []
    for char in text:
        if char == " ":
            pen += style.size * rng.uniform(0.2, 0.45)
            continue
        font_path = fonts.choice(rng).path if style.mixed_fonts else image_font
        size = max(8, round(style.size * (1 + rng.uniform(-style.scale_jitter, style.scale_jitter))))
        size -= size % 2  # fewer distinct sizes: the font cache stays small and warm
        mask, contour, (left, top, right, bottom), advance = _glyph_masks(char, font_path, size, style)
        angle = rng.uniform(-style.rotation, style.rotation)
        centre = (pen + (left + right) / 2, (top + bottom) / 2 + rng.uniform(-1, 1) * style.baseline_jitter * style.size)
        if abs(angle) > 0.5:
            mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
            contour = contour.rotate(angle, Image.Resampling.BILINEAR, expand=True) if contour is not None else None
        x, y = round(centre[0] - mask.width / 2), round(centre[1] - mask.height / 2)
        colour = palette.ink(rng) if style.colour_per_char else ink
        layer.glyphs.append(Glyph(mask, x, y, colour, contour, contour_ink))
        boxes.append((x, y, x + mask.width, y + mask.height))
        pen += advance + style.spacing * style.size
    if not boxes:
        raise ValueError(f"nothing to draw in {text!r}")
    layer.box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    return layer
