"""One case a captcha: a letter the model is unsure of takes the case of the captcha's other letters.

A site draws its captchas in capitals, in small letters, or in both. A model that never saw a
site's style reads most letters in the right case, but takes a few for their other case where the
two look alike (``x`` and ``X``, ``s`` and ``S``; the capital ``I`` and the small ``l`` are one bar
in many fonts). When nearly all the letters of a reading are of one case, :class:`CasePrior` gives
each letter of the other case that case, if the model gave that case at least ``share`` of the
probability it gave the letter as read: a letter the model is sure of keeps its case, as it must
on a site of both cases. The twin of ``l`` among capitals is ``I``, and of ``I`` among small
letters ``l``, since that is the letter it looks like.

Chosen on our own renderer's images only: through the bundled route, with ``share`` 0.2 (its
``otherwise_one_case``), the route read 4.5 points more of capitals-only captchas case-sensitive,
3.0 more of small-letter ones and as many of captchas of both cases (600 images each;
``python -m benchmarks.case_prior``, README "The bundled route").
"""

from __future__ import annotations

import numpy as np

from .codec import ctc_characters, softmax

__all__ = ["CasePrior", "case_twin"]

#: At most one letter in this many of the other case, and at least this many letters, for a reading to have a case.
CASE_SLACK = 3


def case_twin(char: str, case: str) -> str | None:
    """The letter of ``case`` ("upper" or "lower") that ``char`` of the other case looks like; ``None`` for
    a digit, a symbol or a letter already of that case."""
    if case == "upper":
        return "I" if char == "l" else char.upper() if char.islower() and len(char.upper()) == 1 else None
    return "l" if char == "I" else char.lower() if char.isupper() and len(char.lower()) == 1 else None


class CasePrior:
    """The module's rule for a CTC model's alphabet: :meth:`apply` to ``(N, T, C)`` logits before decoding."""

    def __init__(self, alphabet: str, share: float):
        if not 0 < share <= 1:
            raise ValueError(f"share must be above 0 and at most 1, got {share!r}")
        self.alphabet = alphabet
        self.share = share
        index = {char: position + 1 for position, char in enumerate(alphabet)}  # class 0 is the blank
        self._twins = {case: {index[char]: index[twin] for char in alphabet
                              if (twin := case_twin(char, case)) is not None and twin in index}
                       for case in ("upper", "lower")}

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` with, in each image whose greedy reading has a case, the frames of a letter of the
        other case that passes the share given to its twin (the two classes' logits swapped there)."""
        out = logits
        for row in range(logits.shape[0]):
            swaps = self._swaps(logits[row])
            if swaps:
                if out is logits:
                    out = logits.copy()
                for frames, own, twin in swaps:
                    out[row, frames, own], out[row, frames, twin] = logits[row, frames, twin], logits[row, frames, own]
        return out

    def _swaps(self, frame_logits: np.ndarray) -> list[tuple[list[int], int, int]]:
        letters = ctc_characters(frame_logits.argmax(-1).tolist())
        chars = [(self.alphabet[cls - 1], cls, frames) for cls, frames in letters]
        upper = sum(char.isupper() for char, _, _ in chars)
        lower = sum(char.islower() for char, _, _ in chars)
        case = _case_of(upper, lower)
        if case is None:
            return []
        swaps = []
        for index, (_, cls, frames) in enumerate(chars):
            twin = self._twins[case].get(cls)
            if twin is None or _touches(chars, index, twin):
                continue
            probs = softmax(frame_logits[frames])
            if probs[:, twin].max() >= self.share * probs[:, cls].max():  # each at its best frame
                swaps.append((frames, cls, twin))
        return swaps


def _touches(chars: list[tuple[str, int, list[int]]], index: int, cls: int) -> bool:
    """Whether a neighbour of character ``index`` is ``cls`` with no blank frame between: CTC would merge
    the two into one character if ``index`` became ``cls`` (``xX`` read as ``X``)."""
    frames = chars[index][2]
    before = index > 0 and chars[index - 1][1] == cls and chars[index - 1][2][-1] + 1 == frames[0]
    after = index + 1 < len(chars) and chars[index + 1][1] == cls and chars[index + 1][2][0] == frames[-1] + 1
    return before or after


def _case_of(upper: int, lower: int) -> str | None:
    letters = upper + lower
    if letters < CASE_SLACK:
        return None
    if upper > lower and lower * CASE_SLACK <= letters:
        return "upper"
    if lower > upper and upper * CASE_SLACK <= letters:
        return "lower"
    return None
