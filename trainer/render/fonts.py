"""Fonts for the renderer, found at run time: installed font packages plus ``--fonts DIR``.

A font is used only if it draws every character the renderer may ask of it (checked against its
character map), so a symbol or dingbat font never turns a label into boxes. With fewer usable
families than :data:`MIN_FAMILIES` the renderer refuses to start (:class:`MissingFontsError`)
instead of quietly drawing everything in one font.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from PIL import ImageFont

#: Where Debian, other Linux distributions, macOS and Windows keep fonts.
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
#: Fewer families than this and the renderer's breadth is a lie: refuse.
MIN_FAMILIES = 8
#: The Debian packages the generalist's recipe used (Makefile ``SYSTEM_PACKAGES``).
RECIPE_FONT_PACKAGES = (
    "fonts-dejavu-core", "fonts-liberation", "fonts-freefont-ttf", "fonts-urw-base35", "fonts-comic-neue",
    "fonts-lato", "fonts-open-sans", "fonts-crosextra-caladea", "fonts-crosextra-carlito", "fonts-inconsolata",
    "fonts-linuxlibertine", "fonts-roboto-unhinted", "fonts-cantarell",
)
#: Characters every usable font must draw: the generalist's alphabet and the arithmetic symbols.
REQUIRED_CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-=?×÷*/"
#: Fonts whose character map claims letters but whose glyphs are symbols, key caps or math italics.
EXCLUDED = re.compile(r"symbol|dingbat|d050000l|keyboard|math|emoji|icon", re.IGNORECASE)


class MissingFontsError(RuntimeError):
    """Too few usable fonts for the renderer: says where it looked and what to install."""


@dataclass(frozen=True)
class Font:
    """One font file; ``family`` groups its weights and styles."""

    path: str
    family: str

    @property
    def name(self) -> str:
        return Path(self.path).stem


def font_files(dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every font file under ``dirs`` (recursively), sorted, duplicates by file name dropped."""
    found: dict[str, Path] = {}
    for directory in dirs:
        root = Path(directory).expanduser()
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in FONT_SUFFIXES and path.is_file():
                found.setdefault(path.name.lower(), path)
    return sorted(found.values())


def _covers(path: Path, characters: str) -> str | None:
    """The font's family name if it draws every one of ``characters``, else None."""
    from fontTools.ttLib import TTFont  # fontTools comes with matplotlib (the trainer extra)

    try:
        with TTFont(str(path), fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
            family = font["name"].getBestFamilyName() or path.stem
    except Exception:  # an unreadable or exotic font file is simply not used
        return None
    if any(ord(c) not in cmap for c in characters) or EXCLUDED.search(f"{family} {path.name}"):
        return None
    return str(family)


@lru_cache(maxsize=8)
def find_fonts(extra_dirs: tuple[str, ...] = (), characters: str = REQUIRED_CHARACTERS,
               system: bool = True) -> tuple[Font, ...]:
    """Usable fonts in ``extra_dirs`` (``--fonts``) and, with ``system``, the system's font folders."""
    for directory in extra_dirs:
        if not Path(directory).expanduser().is_dir():
            raise MissingFontsError(f"--fonts {directory!r} is not a folder")
    dirs = list(extra_dirs) + (list(SYSTEM_FONT_DIRS) if system else [])
    fonts = []
    for path in font_files(dirs):
        family = _covers(path, characters)
        if family is not None:
            fonts.append(Font(str(path), family))
    return tuple(fonts)


class FontSet:
    """Usable fonts, drawn family first (so a family with twelve weights is not twelve times as likely)."""

    def __init__(self, fonts: Sequence[Font], min_families: int = MIN_FAMILIES, where: str = "the system"):
        families: dict[str, list[Font]] = {}
        for font in fonts:
            families.setdefault(font.family, []).append(font)
        if len(families) < min_families:
            raise MissingFontsError(
                f"the renderer needs fonts of at least {min_families} families that draw {REQUIRED_CHARACTERS!r}; "
                f"found {len(families)} in {where} ({', '.join(sorted(families)) or 'none'}). Install the font packages "
                f"(Debian: apt-get install {' '.join(RECIPE_FONT_PACKAGES)}; or `make system-packages`) or pass --fonts DIR")
        self.families = {name: families[name] for name in sorted(families)}
        self._names = list(self.families)

    @classmethod
    def discover(cls, extra_dirs: Sequence[str] = (), min_families: int = MIN_FAMILIES) -> "FontSet":
        """The fonts installed here plus those in ``extra_dirs``."""
        where = ", ".join([*extra_dirs, *SYSTEM_FONT_DIRS[:2]])
        return cls(find_fonts(tuple(str(d) for d in extra_dirs)), min_families, where)

    def __len__(self) -> int:
        return sum(len(fonts) for fonts in self.families.values())

    def choice(self, rng: random.Random) -> Font:
        return rng.choice(self.families[rng.choice(self._names)])


@lru_cache(maxsize=4096)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A cached Pillow font: loading one costs far more than drawing with it."""
    return ImageFont.truetype(path, size)
