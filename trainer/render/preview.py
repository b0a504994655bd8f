"""A contact sheet: a grid of drawn captchas with their labels, one row per family."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

CELL = (200, 80)  # each image is scaled to fit a cell, keeping its aspect ratio
CAPTION = 16


def contact_sheet(rows: Sequence[tuple[str, Sequence[tuple[Image.Image, str]]]]) -> Image.Image:
    """One row per ``(title, [(image, label), ...])``; labels under the images, titles on the left."""
    try:  # DejaVu draws the arithmetic symbols (x, ÷) in the captions; Pillow's own font does not
        font = ImageFont.truetype("DejaVuSans.ttf", 12)
    except OSError:
        font = ImageFont.load_default(size=12)
    title_width = 110
    columns = max(len(items) for _, items in rows)
    cell_w, cell_h = CELL[0] + 8, CELL[1] + CAPTION + 8
    sheet = Image.new("RGB", (title_width + columns * cell_w, len(rows) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, items) in enumerate(rows):
        top = r * cell_h
        draw.text((4, top + cell_h // 2), title, fill="black", font=font, anchor="lm")
        for c, (image, label) in enumerate(items):
            left = title_width + c * cell_w
            thumb = image.convert("RGB")
            thumb.thumbnail(CELL, Image.Resampling.BILINEAR)
            sheet.paste(thumb, (left + 4, top + 4))
            caption = f"{label}  {image.width}x{image.height}"
            draw.text((left + 4, top + 4 + CELL[1] + 2), caption, fill=(40, 40, 160), font=font)
        draw.line([(0, top + cell_h - 1), (sheet.width, top + cell_h - 1)], fill=(220, 220, 220))
    return sheet


def write_preview(path: str | Path, drawers: Sequence[tuple[str, object]], per_row: int = 6, seed: int = 0) -> Path:
    """Draw ``per_row`` captchas of each ``(title, drawer)`` (a :class:`~trainer.render.Drawer`) into ``path``."""
    rng = random.Random(seed)
    rows = []
    for title, drawer in drawers:
        rows.append((title, [drawer.draw(rng) for _ in range(per_row)]))  # type: ignore[attr-defined]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(rows).save(path)
    return path
