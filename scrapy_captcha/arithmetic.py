"""Arithmetic captchas: ``7+4=?``, ``9x3=``, ``12 - 5 =`` are answered with their result.

:func:`solve_expression` turns the text the model read into the result string, or ``None`` when
the text is not a complete expression. The middleware's ``CAPTCHA_ARITHMETIC`` setting decides
when it is used: ``"auto"`` (when the text reads as a complete expression), ``True`` (always: a
text that is not one is not submitted) or ``False`` (never).
"""

from __future__ import annotations

import re
from fractions import Fraction

#: The symbols a model that reads arithmetic has besides letters and digits (the generalist's), and that
#: only an expression holds.
SYMBOLS = "+-*×÷=?"
#: Operator characters and what they mean; ``x``/``X`` (the letter) is "times" too.
OPERATORS = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "x": "*", "X": "*", "·": "*", "÷": "/", "/": "/", ":": "/"}
_LETTER_OPERATORS = {"x", "X"}
_TOKEN = re.compile(r"\s*(?:(\d{1,6})|(.))")
MAX_OPERANDS = 4
ARITHMETIC_MODES = ("auto", True, False)


def _tokens(text: str) -> list[str] | None:
    """Numbers and operators, alternating, starting and ending with a number; None otherwise."""
    tokens: list[str] = []
    for number, other in _TOKEN.findall(text.strip()):
        if number:
            if tokens and tokens[-1].isdigit():
                return None
            tokens.append(number)
        elif other in OPERATORS and tokens and tokens[-1].isdigit():
            tokens.append(other)
        elif not other.isspace():
            return None
    if len(tokens) < 3 or not tokens[-1].isdigit() or len(tokens) > 2 * MAX_OPERANDS - 1:
        return None
    return tokens


def _evaluate(tokens: list[str]) -> Fraction | None:
    """Left to right, times and divide before plus and minus; None on division by zero."""
    terms: list[Fraction] = [Fraction(int(tokens[0]))]
    signs: list[int] = [1]
    for operator, number in zip(tokens[1::2], tokens[2::2]):
        value, kind = Fraction(int(number)), OPERATORS[operator]
        if kind == "*":
            terms[-1] *= value
        elif kind == "/":
            if value == 0:
                return None
            terms[-1] /= value
        else:
            terms.append(value)
            signs.append(1 if kind == "+" else -1)
    return sum((sign * term for sign, term in zip(signs, terms)), Fraction(0))


def _expression(text: str, force: bool) -> list[str] | None:
    """The numbers and operators of the expression ``text`` reads as, or None (see :func:`solve_expression`)."""
    body = text.strip()
    marked = False
    while body and body[-1] in "=?":
        marked, body = True, body[:-1].rstrip()
    if "=" in body or "?" in body:
        return None
    tokens = _tokens(body)
    if tokens is None:
        return None
    if not force and not marked and set(tokens[1::2]) <= _LETTER_OPERATORS:
        return None
    return tokens


def is_expression(text: str) -> bool:
    """Whether ``text`` reads as a complete expression under the ``auto`` rule, whatever its result."""
    return _expression(text, force=False) is not None


def solve_expression(text: str, force: bool = False) -> str | None:
    """The result of the expression ``text`` reads as (``"11"`` for ``"7+4=?"``), or None.

    A complete expression is two to four whole numbers joined by operators, optionally followed by
    ``=`` and/or ``?``. Without ``force`` (the ``auto`` rule) an expression whose only operators are
    the letter ``x`` must end in ``=`` or ``?``, so that an ordinary code such as ``4x92`` is not
    taken for a product. A result that is not a whole number is not an answer: None.
    """
    tokens = _expression(text, force)
    if tokens is None:
        return None
    result = _evaluate(tokens)
    if result is None or result.denominator != 1:
        return None
    return str(result.numerator)


def parse_arithmetic_setting(value: object) -> str | bool:
    """``CAPTCHA_ARITHMETIC``: "auto", True or False (also as the strings Scrapy settings give)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return "auto"
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"CAPTCHA_ARITHMETIC must be 'auto', True or False, got {value!r}")


def arithmetic_answer(text: str, mode: str | bool) -> tuple[str | None, bool]:
    """The answer to submit for the read ``text`` under ``mode``, and whether it was computed.

    ``(text, False)``: submit what was read; ``(result, True)``: submit the result; ``(None, True)``:
    with ``mode`` True, the text is not an expression, so there is nothing to submit.
    """
    if mode is False:
        return text, False
    result = solve_expression(text, force=mode is True)
    if result is not None:
        return result, True
    return (None, True) if mode is True else (text, False)
