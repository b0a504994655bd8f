"""Arithmetic captchas (family ``arithmetic``): ``7+4=?``, ``9x3=``, ``12 - 5 =`` drawn in the styled
renderer's randomised styles. The label is the expression as written, spaces left out; the answer
(:func:`scrapy_captcha.arithmetic.solve_expression`) is what a site expects."""

from __future__ import annotations

import random

from PIL import Image

from scrapy_captcha.arithmetic import solve_expression

from .base import TextSpec
from .styled import StyledRenderer

#: Operator glyphs as sites draw them, with how often each is picked.
OPERATOR_GLYPHS = {"+": 4, "-": 3, "x": 2, "×": 2, "*": 1, "÷": 1}
ENDINGS = ("=?", "=", "= ?", "", "?")


def expression(rng: random.Random) -> str:
    """An expression with a whole, non-negative result, spaced or not, with one of the usual endings."""
    operator = rng.choices(list(OPERATOR_GLYPHS), weights=list(OPERATOR_GLYPHS.values()))[0]
    big = rng.random() < 0.4
    if operator in "+-":
        a, b = rng.randint(0, 99 if big else 9), rng.randint(0, 99 if big else 9)
        if operator == "-" and b > a:
            a, b = b, a
    elif operator == "÷":
        b = rng.randint(1, 9)
        a = b * rng.randint(0, 12 if big else 9)
    else:
        a, b = rng.randint(0, 12 if big else 9), rng.randint(0, 9)
    gap = " " if rng.random() < 0.35 else ""
    ending = rng.choice(ENDINGS)
    text = f"{a}{gap}{operator}{gap}{b}{gap if ending else ''}{ending}"
    if solve_expression(text.replace(" ", ""), force=True) is None:  # cannot happen; guards the label rule
        raise AssertionError(f"drew an expression without an answer: {text!r}")
    return text


class ArithmeticRenderer(StyledRenderer):
    """Expressions in the styled renderer's styles, a little tamer: an operator must stay readable."""

    name = "arithmetic"

    def text(self, rng: random.Random, spec: TextSpec) -> str:
        return expression(rng)

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        return super().render(text, rng, difficulty * 0.7)
