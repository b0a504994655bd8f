"""The renderer interface: a family draws a PIL image for a text, and picks texts it suits."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

from scrapy_captcha.arithmetic import SYMBOLS as ARITHMETIC_SYMBOLS

#: The generalist's characters: digits, both cases, and the arithmetic symbols (``x`` doubles as "times").
GENERALIST_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + ARITHMETIC_SYMBOLS


@dataclass(frozen=True)
class TextSpec:
    """Which texts to draw: characters and a length range (inclusive)."""

    alphabet: str
    lengths: tuple[int, int] = (4, 4)


def random_text(rng: random.Random, alphabet: str, lengths: tuple[int, int]) -> str:
    """A random label with a length drawn uniformly from ``lengths`` (inclusive)."""
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
        return random_text(rng, spec.alphabet.replace(" ", ""), spec.lengths)
