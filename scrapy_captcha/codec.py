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
    """A solved captcha: the text, the model's confidence in it, and per-character confidences;
    ``model`` names the model that read it when a route chose one (``"default"``, ``"generalist"``);
    ``other_views`` is True when the model, unsure, also read other views of the image
    (:mod:`scrapy_captcha.views`) and this is the reading they agreed on."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    model: str = ""
    other_views: bool = False


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
        return [self._read_path(frame_probs, frame_classes) for frame_probs, frame_classes in zip(best_probs, best.tolist())]

    def decode_ctc_length(self, logits: Any, lengths: tuple[int, int]) -> list[Prediction]:
        """CTC decoding that keeps to ``lengths`` (shortest, longest answer, inclusive).

        A greedy reading already within them is the best path there is; any other is replaced by
        the most probable path with an allowed number of characters (:func:`best_path_of_length`),
        and by an empty answer of confidence 0 where the frames are too few to hold one.
        """
        array = as_array(logits)
        predictions = self.decode_ctc(array)
        for index, prediction in enumerate(predictions):
            if not lengths[0] <= len(prediction.text) <= lengths[1]:
                log_probs = log_softmax(array[index])
                path = best_path_of_length(log_probs, *lengths)
                if path is None:
                    predictions[index] = Prediction("", 0.0, ())
                else:
                    predictions[index] = self._read_path(np.exp(log_probs[np.arange(len(path)), path]), path.tolist())
        return predictions

    def _read_path(self, probs: np.ndarray, classes: list[int]) -> Prediction:
        """One image's prediction from a path: its class and that class's probability at each frame."""
        per_frame = probs.tolist()
        characters = ctc_characters(classes)
        return Prediction("".join(self.alphabet[k - 1] for k, _ in characters),
                          float(np.exp(np.log(probs).sum(dtype=np.float64))),
                          tuple(max(per_frame[frame] for frame in frames) for _, frames in characters))

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


def ctc_characters(path: list[int]) -> list[tuple[int, list[int]]]:
    """The characters of a CTC path (a class per frame, 0 the blank): each one's class and frames, a class
    repeated on neighbouring frames being one character."""
    characters: list[tuple[int, list[int]]] = []
    previous = 0
    for frame, cls in enumerate(path):
        if cls != 0 and cls == previous:
            characters[-1][1].append(frame)
        elif cls != 0:
            characters.append((cls, [frame]))
        previous = cls
    return characters


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


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis, in float64 (sums of many frames stay exact)."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def best_path_of_length(log_probs: np.ndarray, shortest: int, longest: int) -> np.ndarray | None:
    """The most probable CTC path (a class per frame) that collapses to ``shortest``..``longest`` characters.

    ``log_probs`` is one image's ``(T, C)`` log-probabilities, class 0 the blank. Viterbi over
    (characters so far, the last frame's class): a frame either repeats the last class (no new
    character), is a blank, or starts a character different from the last frame's class. None if
    ``T`` frames cannot hold ``shortest`` characters.
    """
    frames, classes = log_probs.shape
    rows = np.arange(longest + 1)
    score = np.full((longest + 1, classes), -np.inf)
    score[0, 0] = log_probs[0, 0]
    if longest >= 1:
        score[1, 1:] = log_probs[0, 1:]
    came_from = np.zeros((frames, longest + 1, classes), dtype=np.int64)  # the previous frame's class
    characters = np.arange(1, classes)
    for t in range(1, frames):
        best = score.argmax(1)
        best_score = score[rows, best]
        runner_up_scores = score.copy()
        runner_up_scores[rows, best] = -np.inf
        second = runner_up_scores.argmax(1)
        second_score = runner_up_scores[rows, second]
        new = np.full_like(score, -np.inf)
        new[:, 0] = best_score + log_probs[t, 0]  # a blank: from any class, same count
        came_from[t, :, 0] = best
        # a new character c: from one fewer character and any class but c
        clash = best[:-1, None] == characters[None, :]
        start_score = np.full((longest + 1, classes - 1), -np.inf)
        start_from = np.zeros((longest + 1, classes - 1), dtype=np.int64)
        start_score[1:] = np.where(clash, second_score[:-1, None], best_score[:-1, None])
        start_from[1:] = np.where(clash, second[:-1, None], best[:-1, None])
        repeat_score = score[:, 1:]  # the same character held over one more frame
        starts = start_score > repeat_score
        new[:, 1:] = np.where(starts, start_score, repeat_score) + log_probs[t, 1:]
        came_from[t, :, 1:] = np.where(starts, start_from, characters[None, :])
        score = new
    allowed = score[shortest:longest + 1]
    if not np.isfinite(allowed).any():
        return None
    count, last = np.unravel_index(allowed.argmax(), allowed.shape)
    count += shortest
    path = np.zeros(frames, dtype=np.int64)
    path[-1] = last
    for t in range(frames - 1, 0, -1):
        previous = came_from[t, count, path[t]]
        if path[t] != 0 and previous != path[t]:
            count -= 1
        path[t - 1] = previous
    return path
