"""Label codec: alphabets, CTC greedy decoding with confidences, the seed's one-hot codes.

The CTC layout reserves class 0 for the blank; character ``alphabet[i]`` is class ``i + 1``.
Decoding works on numpy arrays (torch tensors are accepted too), so the runtime needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
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

    def decode_ctc(self, logits: Any) -> list[Prediction]:
        """Greedy CTC decoding of ``(N, T, C)`` logits (a numpy array or a torch tensor).

        A character's confidence is its best frame's probability; the captcha's confidence is the
        probability of the whole greedy path (blank frames included), so one doubtful frame anywhere
        lowers it.
        """
        best_probs, best = _best(logits)
        predictions = []
        for frame_probs, frame_classes in zip(best_probs, best.tolist()):
            chars: list[str] = []
            confidences: list[float] = []
            previous = 0
            for p, k in zip(frame_probs.tolist(), frame_classes):
                if k != 0 and k != previous:
                    chars.append(self.alphabet[k - 1])
                    confidences.append(p)
                elif k != 0 and confidences:
                    confidences[-1] = max(confidences[-1], p)
                previous = k
            path = float(np.exp(np.log(frame_probs).sum(dtype=np.float64)))
            predictions.append(Prediction("".join(chars), path, tuple(confidences)))
        return predictions

    def one_hot_encode(self, text: str, length: int) -> torch.Tensor:
        """The seed's target (for the trainer): a flat ``length * len(alphabet)`` tensor with one 1 per position."""
        import torch

        self.check(text, max_length=length)
        if len(text) != length:
            raise LabelError(f"label {text!r} is not {length} characters long")
        code = torch.zeros(length, len(self.alphabet))
        for position, c in enumerate(text):
            code[position, self._index[c]] = 1.0
        return code.view(-1)

    def decode_one_hot(self, logits: Any) -> list[Prediction]:
        """Decode ``(N, length * len(alphabet))`` logits of the seed's head, one softmax per position."""
        array = as_array(logits)
        best_probs, best = _best(array.reshape(array.shape[0], -1, len(self.alphabet)))
        predictions = []
        for row_probs, row_classes in zip(best_probs, best.tolist()):
            text = "".join(self.alphabet[k] for k in row_classes)
            confidence = float(np.prod(row_probs, dtype=np.float64))
            predictions.append(Prediction(text, confidence, tuple(row_probs.tolist())))
        return predictions


def as_array(logits: Any) -> np.ndarray:
    """A float32 numpy array of ``logits`` (a numpy array or a torch tensor on any device)."""
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    return np.asarray(logits, dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def _best(logits: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the most likely class's probability and the class."""
    array = as_array(logits)
    best = array.argmax(axis=-1)
    # the winner's softmax probability is 1 / sum(exp(x - max)): no need for the whole softmax
    # (max, not take_along_axis at best: the same values, without its 12 us of index building per solve)
    shifted = array - array.max(axis=-1, keepdims=True)
    return (1.0 / np.exp(shifted).sum(axis=-1, dtype=np.float32)).astype(np.float32), best
