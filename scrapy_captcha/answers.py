"""Answer rules: map the model's characters onto the answers a site accepts (case, alphabet)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .codec import Codec, Prediction, as_array, softmax
from .errors import CaptchaSettingsError
from .config import ModelConfig


@dataclass(frozen=True)
class AnswerRules:
    """How the model's classes map onto the answers a site accepts (case folding, alphabet)."""

    codec: Codec
    matrix: np.ndarray  # float32, model classes x answer classes, 0/1
    one_hot: bool

    def decode(self, logits: Any, config: ModelConfig) -> list[Prediction]:
        """Decode model outputs (a numpy array or a torch tensor) into allowed answers only."""
        logits = as_array(logits)
        if self.one_hot:
            probs = softmax(logits.reshape(logits.shape[0], -1, len(config.alphabet))) @ self.matrix
            return self.codec.decode_one_hot(np.log(probs + 1e-12).reshape(logits.shape[0], -1))
        probs = softmax(logits) @ self.matrix
        return self.codec.decode_ctc(np.log(probs + 1e-12))


def answer_rules(config: ModelConfig, answer_case: str, alphabet: str | None) -> AnswerRules | None:
    """Rules mapping the model's characters to allowed answers; ``None`` when nothing changes.

    A character is kept if its case-folded form is in ``alphabet``; the probabilities of
    characters that fold together ('a' and 'A' for a lower-case site) are added, and the rest
    are dropped before decoding, so the answer and its confidence only consider allowed answers.
    """
    fold = {"lower": str.lower, "upper": str.upper}.get(answer_case, lambda c: c)
    targets: list[str | None] = []
    answers: list[str] = []
    for char in config.alphabet:
        folded = fold(char) if len(fold(char)) == 1 else char
        if alphabet is not None and folded not in alphabet:
            targets.append(None)
            continue
        targets.append(folded)
        if folded not in answers:
            answers.append(folded)
    if not answers:
        raise CaptchaSettingsError(f"CAPTCHA_ALPHABET {alphabet!r} shares no character with the model's alphabet {config.alphabet!r}")
    if answers == list(config.alphabet):
        return None
    one_hot = config.head == "one-hot"
    offset = 0 if one_hot else 1  # CTC class 0 is the blank
    matrix = np.zeros((len(targets) + offset, len(answers) + offset), dtype=np.float32)
    if not one_hot:
        matrix[0, 0] = 1.0
    for index, target in enumerate(targets):
        if target is not None:
            matrix[index + offset, answers.index(target) + offset] = 1.0
    return AnswerRules(Codec("".join(answers)), matrix, one_hot)
