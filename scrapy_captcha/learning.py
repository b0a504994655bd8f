"""What a site's accepted answers teach: how long its captchas are, and their case (``CAPTCHA_LEARN_AFTER``).

Told a site's answer length, the bundled models read more of its captchas: the route reads
django-simple-captcha's images (at twice their size) at 81.0% any case instead of 75.4%, and
easy-captcha's at 51.0% instead of 41.8% (README, "Past ddddocr from the site's own verdicts"). A user seldom knows to set them, but the site says: every answer
it accepts is the captcha's text. Once a site has accepted ``after`` answers (``CAPTCHA_LEARN_AFTER``,
default :data:`LEARN_AFTER`) and all of them had one length, the site's later captchas are read as
``CAPTCHA_ANSWER_LENGTH`` of that length would; if all their letters were capitals (or all small
letters), as ``CAPTCHA_ANSWER_CASE = "upper"`` (``"lower"``) would. A length only when every answer
had it: a site of 4 to 6 characters gives 8 answers of one length about once in 2,000 crawls, and
a range learned from a few answers could leave a length out for good. A setting the user gave is
never overridden. Arithmetic results teach nothing (the answer is not the text).

If the site then rejects :data:`FORGET_AFTER` answers in a row (a site that changed its captchas;
readings too unsure to send count too), what it taught is forgotten and learning starts again.

:func:`answer_shape` is the rule; :class:`SiteLearning` keeps it per site for the middleware, and
``trainer adapt`` applies the same rule to a recording's accepted answers.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .errors import CaptchaSettingsError

__all__ = ["FORGET_AFTER", "LEARN_AFTER", "AnswerShape", "SiteLearning", "answer_shape"]

logger = logging.getLogger(__name__)

#: Accepted answers a site must give before its answer shape is applied (CAPTCHA_LEARN_AFTER's default).
LEARN_AFTER = 8
#: Answers rejected in a row, once a shape is applied, after which the site's shape is forgotten.
FORGET_AFTER = 10


@dataclass(frozen=True)
class AnswerShape:
    """What every one of a site's accepted answers had in common."""

    length: int | None = None  # the one length of all of them; None: more than one
    case: str | None = None  # "upper" or "lower": the case of all their letters; None: both, or too few letters

    def __bool__(self) -> bool:
        return self.length is not None or self.case is not None

    def describe(self) -> str:
        parts = ([f"{self.length} characters"] if self.length is not None else []) + ([f"{self.case} case"] if self.case else [])
        return ", ".join(parts) or "nothing in common"


def answer_shape(answers: Iterable[str], after: int = LEARN_AFTER) -> AnswerShape | None:
    """The shape that all ``answers`` share; ``None`` with fewer than ``after`` answers.

    The case is learned only from at least ``after`` letters (digits have none)."""
    answers = [answer for answer in answers if answer]
    if after < 1 or len(answers) < after:
        return None
    lengths = {len(answer) for answer in answers}
    letters = [char for answer in answers for char in answer if char.lower() != char.upper()]
    case = None
    if len(letters) >= after:
        case = "upper" if all(char.isupper() for char in letters) else "lower" if all(char.islower() for char in letters) else None
    return AnswerShape(lengths.pop() if len(lengths) == 1 else None, case)


class _Site:
    __slots__ = ("accepted", "rejected_in_a_row", "rules", "shape")

    def __init__(self, after: int):
        self.accepted: deque[str] = deque(maxlen=after)
        self.rejected_in_a_row = 0
        self.shape: AnswerShape | None = None
        self.rules: Any = None


class SiteLearning:
    """Each site's answer shape, learned from its verdicts, and the answer rules that apply it.

    ``build(answer_case, lengths)`` makes the answer rules for a shape (the middleware's
    ``solver.answer_rules`` with the user's alphabet); ``base`` are the rules of the settings alone.
    ``answer_case`` and ``answer_length`` are the user's settings: a part of the shape they already
    fix is not learned.
    """

    def __init__(self, build: Callable[[str, tuple[int, int] | None], Any], base: Any, after: int,
                 answer_case: str = "as-is", answer_length: tuple[int, int] | None = None):
        self.build, self.base, self.after = build, base, after
        self.answer_case, self.answer_length = answer_case, answer_length
        self._sites: dict[str, _Site] = {}

    def rules(self, site: str) -> Any:
        """The answer rules to read ``site``'s captchas with."""
        known = self._sites.get(site)
        return known.rules if known is not None and known.shape else self.base

    def shape(self, site: str) -> AnswerShape | None:
        """What ``site`` taught so far (``None``: nothing yet)."""
        known = self._sites.get(site)
        return known.shape if known is not None else None

    def accepted(self, site: str, answer: str) -> AnswerShape | None:
        """``site`` accepted ``answer`` (the text read, not an arithmetic result); returns the shape if it is new."""
        if self.after < 1:
            return None
        known = self._sites.setdefault(site, _Site(self.after))
        known.rejected_in_a_row = 0
        known.accepted.append(answer)
        if known.shape is not None:
            return None
        shape = answer_shape(known.accepted, self.after)
        if shape is None:
            return None
        shape = AnswerShape(shape.length if self.answer_length is None else None,
                            shape.case if self.answer_case == "as-is" else None)
        known.shape = shape  # decided once, also when nothing is shared: rules that never change mid-crawl
        if not shape:
            return None
        try:
            known.rules = self.build(shape.case or self.answer_case,
                                     (shape.length, shape.length) if shape.length is not None else self.answer_length)
        except CaptchaSettingsError as exc:  # no model reads that shape: read as before
            logger.warning("%s accepted answers of %s, which no model can keep to (%s)", site, shape.describe(), exc)
            known.shape = AnswerShape()
            return None
        return shape

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
        self._sites[site] = _Site(self.after)
        return forgotten
