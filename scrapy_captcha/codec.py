"""Label codec: alphabets, CTC greedy decoding with confidences, the seed's one-hot codes.

The CTC layout reserves class 0 for the blank; character ``alphabet[i]`` is class ``i + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The seed notebook's character pool: digits and both cases, without l, o, I and O.
SEED_ALPHABET = "0123456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


class LabelError(ValueError):
    """A label that the alphabet or the model's length limits cannot represent."""


@dataclass(frozen=True)
class Prediction:
    """A solved captcha: the text, the model's confidence in it, and per-character confidences."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]


class Codec:
    """Maps text to class indices and model outputs back to text."""

    def __init__(self, alphabet: str = SEED_ALPHABET):
        if not alphabet:
            raise ValueError("alphabet is empty")
        repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
        if repeated:
            raise ValueError(f"alphabet repeats characters: {''.join(repeated)!r}")
        self.alphabet = alphabet
        self._index = {c: i for i, c in enumerate(alphabet)}

    @property
    def num_classes(self) -> int:
        """Classes of the CTC head: the alphabet plus the blank."""
        return len(self.alphabet) + 1

    def check(self, text: str, max_length: int | None = None) -> None:
        """Raise :class:`LabelError` if ``text`` cannot be a label."""
        if not text:
            raise LabelError("label is empty")
        unknown = sorted({c for c in text if c not in self._index})
        if unknown:
            raise LabelError(f"label {text!r} has characters outside the alphabet: {''.join(unknown)!r}")
        if max_length is not None and len(text) > max_length:
            raise LabelError(f"label {text!r} is longer than {max_length} characters")

    def encode(self, text: str) -> list[int]:
        """CTC targets for ``text``: class indices, blank excluded."""
        self.check(text)
        return [self._index[c] + 1 for c in text]

    def decode_ctc(self, logits: torch.Tensor) -> list[Prediction]:
        """Greedy CTC decoding of ``(N, T, C)`` logits.

        A character's confidence is its best frame's probability; the captcha's confidence is the
        probability of the whole greedy path (blank frames included), so one doubtful frame anywhere
        lowers it.
        """
        probs = logits.detach().float().softmax(-1).cpu()
        best_probs, best = probs.max(-1)
        predictions = []
        for frame_probs, frame_classes in zip(best_probs.tolist(), best.tolist()):
            chars: list[str] = []
            confidences: list[float] = []
            previous = 0
            for p, k in zip(frame_probs, frame_classes):
                if k != 0 and k != previous:
                    chars.append(self.alphabet[k - 1])
                    confidences.append(p)
                elif k != 0 and confidences:
                    confidences[-1] = max(confidences[-1], p)
                previous = k
            path = float(torch.tensor(frame_probs).log().sum().exp())
            predictions.append(Prediction("".join(chars), path, tuple(confidences)))
        return predictions

    def one_hot_encode(self, text: str, length: int) -> torch.Tensor:
        """The seed's target: a flat ``length * len(alphabet)`` vector with one 1 per position."""
        self.check(text, max_length=length)
        if len(text) != length:
            raise LabelError(f"label {text!r} is not {length} characters long")
        code = torch.zeros(length, len(self.alphabet))
        for position, c in enumerate(text):
            code[position, self._index[c]] = 1.0
        return code.view(-1)

    def decode_one_hot(self, logits: torch.Tensor) -> list[Prediction]:
        """Decode ``(N, length * len(alphabet))`` logits of the seed's head, one softmax per position."""
        probs = logits.detach().float().view(logits.shape[0], -1, len(self.alphabet)).softmax(-1).cpu()
        best_probs, best = probs.max(-1)
        predictions = []
        for row_probs, row_classes in zip(best_probs.tolist(), best.tolist()):
            text = "".join(self.alphabet[k] for k in row_classes)
            confidence = float(torch.tensor(row_probs).prod())
            predictions.append(Prediction(text, confidence, tuple(row_probs)))
        return predictions
