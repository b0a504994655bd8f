"""The renderer interface: a family draws a PIL image for a text, and picks texts it suits."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

from scrapy_captcha.arithmetic import SYMBOLS as ARITHMETIC_SYMBOLS

#: The generalist's characters: digits, both cases, and the arithmetic symbols (``x`` doubles as "times").
GENERALIST_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + ARITHMETIC_SYMBOLS


#: Characters whose glyphs are narrow in most fonts: a model that gives them too few frames drops them.
NARROW_CHARACTERS = "IiljJ1ftr"
#: In a narrow-rich text (:attr:`TextSpec.narrow`), the chance of each character being a narrow one.
NARROW_CHANCE = 0.4


@dataclass(frozen=True)
class TextSpec:
    """Which texts to draw: characters and a length range (inclusive).

    ``narrow``: the share of texts rich in the alphabet's narrow characters (:data:`NARROW_CHARACTERS`,
    each character one with chance :data:`NARROW_CHANCE`); uniform texts hold them seldom side by side.
    """

    alphabet: str
    lengths: tuple[int, int] = (4, 4)
    narrow: float = 0.0


def random_text(rng: random.Random, alphabet: str, lengths: tuple[int, int], narrow: float = 0.0) -> str:
    """A random label with a length drawn uniformly from ``lengths`` (inclusive); a share ``narrow`` of them
    rich in narrow characters (no draw from ``rng`` for it at 0: earlier recipes' seeds draw as before)."""
    narrow_ones = "".join(c for c in NARROW_CHARACTERS if c in alphabet) if narrow > 0 and rng.random() < narrow else ""
    if narrow_ones:
        return "".join(rng.choice(narrow_ones) if rng.random() < NARROW_CHANCE else rng.choice(alphabet)
                       for _ in range(rng.randint(*lengths)))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(*lengths)))


def label_of(text: str) -> str:
    """The label of a drawn text: what the model must read (spaces are layout, not characters)."""
    return text.replace(" ", "")


@runtime_checkable
class Renderer(Protocol):
    """One family of captcha drawings.

    ``text`` picks a text to draw (it may contain spaces, which the label leaves out:
    :func:`label_of`); ``render`` draws it. ``difficulty`` in [0, 1] is the curriculum's knob:
    families without one ignore it.
    """

    name: str

    def text(self, rng: random.Random, spec: TextSpec) -> str: ...

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image: ...


class RandomTextMixin:
    """Texts drawn uniformly from the spec's alphabet (the default for most families)."""

    def text(self, rng: random.Random, spec: TextSpec) -> str:
        return random_text(rng, spec.alphabet.replace(" ", ""), spec.lengths, spec.narrow)
