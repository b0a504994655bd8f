"""Answer rules: map the model's characters onto the answers a site accepts (case, alphabet, length).

A model that reads arithmetic (the generalist: ``+ - * × ÷ = ?`` besides letters and digits) keeps
those symbols for expressions: a reading that holds one but is no complete expression
(:func:`~scrapy_captcha.arithmetic.is_expression`), such as ``4C×48``, is read again from the same
frames without the symbols (``4CX48``), since no text captcha's answer has them. Naming a symbol in
``CAPTCHA_ALPHABET`` keeps it in any reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .arithmetic import SYMBOLS, is_expression
from .case_prior import case_twin
from .codec import Codec, Prediction, as_array, softmax
from .errors import CaptchaSettingsError
from .config import ModelConfig

#: Characters that only an arithmetic expression holds.
EXPRESSION_SYMBOLS = frozenset(SYMBOLS)


@dataclass(frozen=True)
class AnswerRules:
    """How the model's classes map onto the answers a site accepts (case folding, alphabet)."""

    codec: Codec
    matrix: np.ndarray | None  # float32, model classes x answer classes, 0/1; None: the model's own classes
    one_hot: bool
    lengths: tuple[int, int] | None = None  # shortest and longest answer (CTC models; a one-hot model's is fixed)
    plain: AnswerRules | None = None  # the same rules without the expression symbols, for readings that are no expression

    def decode(self, logits: Any, config: ModelConfig) -> list[Prediction]:
        """Decode model outputs (a numpy array or a torch tensor) into allowed answers only."""
        logits = as_array(logits)
        predictions = self._decode(logits, config)
        if self.plain is not None:
            for index, prediction in enumerate(predictions):
                if not EXPRESSION_SYMBOLS.isdisjoint(prediction.text) and not is_expression(prediction.text):
                    predictions[index] = self.plain.decode(logits[index:index + 1], config)[0]
        return predictions

    def _decode(self, logits: np.ndarray, config: ModelConfig) -> list[Prediction]:
        if self.one_hot:
            probs = softmax(logits.reshape(logits.shape[0], -1, len(config.alphabet))) @ self.matrix
            return self.codec.decode_one_hot(np.log(probs + 1e-12).reshape(logits.shape[0], -1))
        if self.matrix is not None:
            logits = np.log(self.answer_probs(logits) + 1e-12)
        return self.read(logits)

    def answer_probs(self, logits: Any) -> np.ndarray:
        """A CTC model's per-frame probabilities of the answer classes (the blank first)."""
        probs = softmax(as_array(logits))
        return probs if self.matrix is None else probs @ self.matrix

    def read(self, scores: Any) -> list[Prediction]:
        """Decode per-frame scores of the answer classes (logits or log-probabilities), keeping to the lengths."""
        return self.codec.decode_ctc_length(scores, self.lengths) if self.lengths else self.codec.decode_ctc(scores)


def _capital(char: str) -> str:
    """The capital a model's character is on a site of capitals: its upper case, but ``I`` for the bar ``l``."""
    return case_twin(char, "upper") or char.upper()


def answer_rules(config: ModelConfig, answer_case: str, alphabet: str | None,
                 lengths: tuple[int, int] | None = None) -> AnswerRules | None:
    """Rules mapping the model's characters to allowed answers; ``None`` when nothing changes.

    A character is kept if its case-folded form is in ``alphabet``; the probabilities of
    characters that fold together ('a' and 'A' for a lower-case site) are added, and the rest
    are dropped before decoding, so the answer and its confidence only consider allowed answers.
    On a site of capitals (``"upper"``) a small ``l`` counts as the ``I`` it looks like (one bar in
    many fonts), not as ``L``.
    ``lengths`` (``CAPTCHA_ANSWER_LENGTH``) keeps a CTC model's answers to that many characters
    (:meth:`~scrapy_captcha.codec.Codec.decode_ctc_length`). A CTC model's expression symbols are
    read only into expressions (the module's docstring) unless ``alphabet`` names one of them.
    """
    one_hot = config.head == "one-hot"
    if lengths is not None:
        if one_hot and not lengths[0] <= config.max_length <= lengths[1]:
            raise CaptchaSettingsError(f"CAPTCHA_ANSWER_LENGTH {lengths[0]}-{lengths[1]} leaves out the only length the "
                                       f"{config.arch} model answers with: {config.max_length}")
        if lengths[0] > config.max_length:
            raise CaptchaSettingsError(f"CAPTCHA_ANSWER_LENGTH {lengths[0]}-{lengths[1]}: the model reads at most "
                                       f"{config.max_length} characters")
        lengths = None if one_hot else (lengths[0], min(lengths[1], config.max_length))
    fold = {"lower": str.lower, "upper": _capital}.get(answer_case, lambda c: c)
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
    plain = None
    symbols = EXPRESSION_SYMBOLS.intersection(answers)
    if symbols and not one_hot and (alphabet is None or not EXPRESSION_SYMBOLS.intersection(alphabet)):
        plain = answer_rules(config, answer_case, "".join(a for a in answers if a not in symbols), lengths)
    if answers == list(config.alphabet):
        return AnswerRules(Codec(config.alphabet), None, one_hot, lengths, plain) if lengths or plain else None
    offset = 0 if one_hot else 1  # CTC class 0 is the blank
    matrix = np.zeros((len(targets) + offset, len(answers) + offset), dtype=np.float32)
    if not one_hot:
        matrix[0, 0] = 1.0
    for index, target in enumerate(targets):
        if target is not None:
            matrix[index + offset, answers.index(target) + offset] = 1.0
    return AnswerRules(Codec("".join(answers)), matrix, one_hot, lengths, plain)
