"""Accuracy figures shared by validation and evaluation."""

from __future__ import annotations

from collections import Counter
from typing import Sequence


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def score(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """Whole-captcha accuracy (with and without case) and character accuracy.

    Character accuracy is ``1 - edit distance / characters``, so a dropped or extra character
    counts as one error, not as a shift of every character after it.
    """
    if len(predicted) != len(truth):
        raise ValueError("predicted and truth differ in length")
    count = len(truth)
    exact = sum(p == t for p, t in zip(predicted, truth))
    folded = sum(p.lower() == t.lower() for p, t in zip(predicted, truth))
    errors = sum(edit_distance(p, t) for p, t in zip(predicted, truth))
    characters = sum(len(t) for t in truth)
    return {
        "count": count,
        "sequence_accuracy": exact / count if count else 0.0,
        "sequence_accuracy_case_insensitive": folded / count if count else 0.0,
        "character_accuracy": max(0.0, 1 - errors / characters) if characters else 0.0,
    }


def confusions(predicted: Sequence[str], truth: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent ``(true, predicted, count)`` character substitutions, from same-length pairs."""
    counter: Counter[tuple[str, str]] = Counter()
    for p, t in zip(predicted, truth):
        if len(p) == len(t):
            counter.update((a, b) for a, b in zip(t, p) if a != b)
    return [(a, b, n) for (a, b), n in counter.most_common(top)]
