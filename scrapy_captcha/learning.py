"""What a site's accepted answers teach: the length, case and kind of its captchas (``CAPTCHA_LEARN_AFTER``).

Told a site's answer length and characters, the bundled models read more of its captchas: the route
reads django-simple-captcha's images at 65.0% any case with their length instead of 60.2%, and at
67.4% with letters only as well (README, "Past ddddocr from the site's own verdicts"). A user
seldom knows to set them, but the site says: every answer it accepts is a captcha's text. From them
the middleware learns, each part once, as soon as the answers are enough for it:

* the length, after ``after`` answers (``CAPTCHA_LEARN_AFTER``, default :data:`LEARN_AFTER`): if all
  had one length, later captchas are read as ``CAPTCHA_ANSWER_LENGTH`` of it would. One length only:
  a site of 4 to 6 characters gives 8 answers of one length about once in 2,000, and a range learned
  from a few answers could leave a length out for good.
* the case, once they hold ``4 x after`` letters: if at most one in :data:`CASE_SLACK` is a small
  letter, as ``CAPTCHA_ANSWER_CASE = "upper"`` would (capitals: ``"lower"``). Not "none": a site that
  ignores case accepts a small ``o`` read for a capital ``O``; the route's accepted answers on four
  sites of capitals held 2-7% small letters, on a site of both cases 36%.
* the kind, once they hold ``8 x after`` characters: letters and nothing else, and answers hold
  letters only (digits and nothing else: digits only), as ``CAPTCHA_ALPHABET`` would. A site that draws a digit one character
  in 8 shows none in 64 about once in 5,000.

A setting the user gave is never overridden. Arithmetic results teach nothing (the answer is not the
text). If the site then rejects :data:`FORGET_AFTER` answers in a row (a site that changed its
captchas; readings too unsure to send count too), what it taught is forgotten and learning starts
again.

:func:`answer_shape` is the rule; :class:`SiteLearning` keeps it per site for the middleware, and
``trainer adapt`` applies the same rule to a recording's labels.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from .errors import CaptchaSettingsError

__all__ = ["FORGET_AFTER", "KIND_ALPHABETS", "LEARN_AFTER", "AnswerShape", "SiteLearning", "answer_shape", "read_shape"]

logger = logging.getLogger(__name__)

#: Accepted answers a site must give before its answer length is decided (CAPTCHA_LEARN_AFTER's default).
LEARN_AFTER = 8
#: Answers rejected in a row, once a shape is applied, after which the site's shape is forgotten.
FORGET_AFTER = 10
#: Letters per ``after`` answers before the case is decided, and characters before the kind is.
CASE_LETTERS, KIND_CHARACTERS = 4, 8
#: At most one letter in this many of the other case, for the case to be learned.
CASE_SLACK = 8
#: The answers kept per site, per ``after``: by then every part is decided, shown or not.
KEPT = 8
#: The characters a learned kind allows (``CAPTCHA_ALPHABET`` folds case, so both cases are named).
KIND_ALPHABETS = {"letters": string.ascii_letters, "digits": string.digits}
PARTS = ("length", "case", "kind")


@dataclass(frozen=True)
class AnswerShape:
    """What a site's accepted answers have in common."""

    length: int | None = None  # the one length of all of them
    case: str | None = None  # "upper" or "lower": the case of (nearly) all their letters
    kind: str | None = None  # "letters" or "digits": the only kind of character they hold

    def __bool__(self) -> bool:
        return any(getattr(self, part) is not None for part in PARTS)

    def describe(self) -> str:
        parts = ([f"{self.length} characters"] if self.length is not None else []) + ([f"{self.case} case"] if self.case else [])
        parts += {"letters": ["no digits"], "digits": ["no letters"]}.get(self.kind or "", [])
        return ", ".join(parts) or "nothing in common"


def read_shape(answers: Iterable[str], after: int = LEARN_AFTER) -> tuple[AnswerShape, frozenset[str]]:
    """What ``answers`` show of the site's captchas, and which parts (:data:`PARTS`) they are enough to decide."""
    answers = [answer for answer in answers if answer]
    if after < 1 or len(answers) < after:
        return AnswerShape(), frozenset()
    characters = "".join(answers)
    letters = [char for char in characters if char.lower() != char.upper()]
    digits = sum(char.isdigit() for char in characters)
    lengths = {len(answer) for answer in answers}
    decided, shape = {"length"}, {"length": lengths.pop() if len(lengths) == 1 else None}
    if len(letters) >= CASE_LETTERS * after:
        decided.add("case")
        small = sum(char.islower() for char in letters)
        shape["case"] = ("upper" if small * CASE_SLACK <= len(letters)
                         else "lower" if (len(letters) - small) * CASE_SLACK <= len(letters) else None)
    if len(characters) >= KIND_CHARACTERS * after:
        decided.add("kind")
        shape["kind"] = "letters" if len(letters) == len(characters) else "digits" if digits == len(characters) else None
    return AnswerShape(**shape), frozenset(decided)


def answer_shape(answers: Iterable[str], after: int = LEARN_AFTER) -> AnswerShape | None:
    """The shape ``answers`` show, as far as they are enough to; ``None`` with fewer than ``after`` answers."""
    shape, decided = read_shape(answers, after)
    return shape if decided else None


class _Site:
    __slots__ = ("accepted", "answers", "decided", "rejected_in_a_row", "rules", "shape")

    def __init__(self) -> None:
        self.accepted = 0
        self.answers: list[str] = []  # emptied once every part is decided
        self.decided: set[str] = set()
        self.rejected_in_a_row = 0
        self.shape = AnswerShape()
        self.rules: Any = None


class SiteLearning:
    """Each site's answer shape, learned from its verdicts, and the answer rules that apply it.

    ``build(answer_case, lengths, alphabet)`` makes the answer rules for a shape (the middleware's
    ``solver.answer_rules``); ``base`` are the rules of the settings alone. ``answer_case``,
    ``answer_length`` and ``alphabet`` are the user's settings: a part of the shape they fix is not learned.
    """

    def __init__(self, build: Callable[[str, tuple[int, int] | None, str | None], Any], base: Any, after: int,
                 answer_case: str = "as-is", answer_length: tuple[int, int] | None = None, alphabet: str | None = None):
        self.build, self.base, self.after = build, base, after
        self.answer_case, self.answer_length, self.alphabet = answer_case, answer_length, alphabet
        self._sites: dict[str, _Site] = {}
        self._built: dict[tuple[Any, ...], Any] = {}  # rules by what they keep to: shared by the sites of one shape

    def rules(self, site: str) -> Any:
        """The answer rules to read ``site``'s captchas with."""
        known = self._sites.get(site)
        return known.rules if known is not None and known.shape else self.base

    def shape(self, site: str) -> AnswerShape:
        """What ``site`` taught so far."""
        known = self._sites.get(site)
        return known.shape if known is not None else AnswerShape()

    def accepted_answers(self, site: str) -> int:
        """How many answers ``site`` accepted since learning (re)started, until every part was decided."""
        known = self._sites.get(site)
        return known.accepted if known is not None else 0

    def accepted(self, site: str, answer: str) -> AnswerShape | None:
        """``site`` accepted ``answer`` (the text read, not an arithmetic result); returns what it newly teaches."""
        if self.after < 1:
            return None
        known = self._sites.setdefault(site, _Site())
        known.rejected_in_a_row = 0
        if len(known.decided) == len(PARTS):
            return None
        known.answers.append(answer)
        known.accepted += 1
        shape, decided = read_shape(known.answers, self.after)
        if len(known.answers) >= KEPT * self.after:  # what they have not shown by now, they never will
            decided = frozenset(PARTS)
        if decided == frozenset(PARTS):
            known.answers = []
        fixed = self._fixed()
        new = {part: getattr(shape, part) for part in decided - known.decided if part not in fixed and getattr(shape, part)}
        known.decided |= decided
        if not new:
            return None
        learned = replace(known.shape, **new)
        if not self._apply(site, known, learned):
            return None
        return AnswerShape(**new)

    def _fixed(self) -> set[str]:
        """The parts of the shape that the user's settings fix."""
        return {part for part, given in (("length", self.answer_length is not None), ("case", self.answer_case != "as-is"),
                                         ("kind", self.alphabet is not None)) if given}

    def _apply(self, site: str, known: _Site, learned: AnswerShape) -> bool:
        """Read ``site`` as ``learned`` from now on; False (and a warning) if no model can keep to it."""
        key = (learned.case or self.answer_case, (learned.length, learned.length) if learned.length is not None else self.answer_length,
               KIND_ALPHABETS[learned.kind] if learned.kind else self.alphabet)
        if key not in self._built:
            try:
                self._built[key] = self.build(*key)
            except CaptchaSettingsError as exc:  # no model reads that shape: read as before
                logger.warning("%s accepted answers of %s, which no model can keep to (%s)", site, learned.describe(), exc)
                return False
        known.shape, known.rules = learned, self._built[key]
        return True

    def rejected(self, site: str) -> AnswerShape | None:
        """``site`` rejected an answer (or one was too unsure to send); returns the shape forgotten after
        :data:`FORGET_AFTER` in a row."""
        known = self._sites.get(site)
        if known is None or not known.shape:
            return None
        known.rejected_in_a_row += 1
        if known.rejected_in_a_row < FORGET_AFTER:
            return None
        forgotten = known.shape
        self._sites[site] = _Site()
        return forgotten

    def state(self, sites: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """What every site (or each of ``sites`` known) taught, as JSON-ready data (:meth:`restore` reads it back)."""
        chosen = self._sites if sites is None else {site: self._sites[site] for site in sites if site in self._sites}
        return {site: {"shape": {part: getattr(known.shape, part) for part in PARTS if getattr(known.shape, part) is not None},
                       "decided": sorted(known.decided), "answers": list(known.answers), "accepted": known.accepted,
                       "rejected_in_a_row": known.rejected_in_a_row}
                for site, known in chosen.items()}

    def restore(self, state: dict[str, Any]) -> list[str]:
        """Take back what :meth:`state` gave (from an earlier crawl); the sites whose shape applies again.

        A part the user's settings now fix is dropped. ``ValueError`` names the site whose data is wrong.
        """
        restored = []
        for site, data in state.items():
            try:
                known, shape = _read_site(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"site {site!r}: {exc}") from None
            shape = replace(shape, **{part: None for part in self._fixed()})
            self._sites[site] = known
            if shape and self._apply(site, known, shape):
                restored.append(site)
        return restored


def _read_site(data: dict[str, Any]) -> tuple[_Site, AnswerShape]:
    """A site's :meth:`SiteLearning.state` entry checked: its bookkeeping, and the shape to apply."""
    known = _Site()
    shape = data.get("shape", {})
    if not isinstance(shape, dict) or set(shape) - set(PARTS):
        raise ValueError(f"shape must map {PARTS} to values, got {shape!r}")
    length, case, kind = (shape.get(part) for part in PARTS)
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
        raise ValueError(f"length must be a whole number above 0, got {length!r}")
    if case not in (None, "upper", "lower"):
        raise ValueError(f"case must be 'upper' or 'lower', got {case!r}")
    if kind is not None and kind not in KIND_ALPHABETS:
        raise ValueError(f"kind must be one of {sorted(KIND_ALPHABETS)}, got {kind!r}")
    decided, answers = data.get("decided", []), data.get("answers", [])
    if not isinstance(decided, list) or not set(decided) <= set(PARTS):
        raise ValueError(f"decided must list parts of {PARTS}, got {decided!r}")
    if not isinstance(answers, list) or not all(isinstance(answer, str) for answer in answers):
        raise ValueError(f"answers must be a list of texts, got {answers!r}")
    counts = [data.get(name, 0) for name in ("accepted", "rejected_in_a_row")]
    if not all(isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in counts):
        raise ValueError(f"accepted and rejected_in_a_row must be whole numbers, got {counts!r}")
    known.decided, known.answers = set(decided), answers
    known.accepted, known.rejected_in_a_row = counts
    return known, AnswerShape(length, case, kind)
