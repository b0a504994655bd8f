"""The solver: image bytes in, text and confidence out."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from .codec import Codec, Prediction
from .image import ImageInput, pad_batch, to_array
from .model import decode
from .weights import Weights, load_weights

if TYPE_CHECKING:
    from .answers import AnswerRules


class Solver:
    """Solves captcha images with one loaded model. Safe to call from several threads."""

    def __init__(self, weights: Weights, device: str = "cpu"):
        self.weights = weights
        self.config = weights.config
        self.codec = Codec(self.config.alphabet)
        self.device = torch.device(device)
        self.model = weights.build(self.device)
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path: str | Path | None = None, device: str = "cpu") -> "Solver":
        """Load weights from ``path`` (default: the bundled model)."""
        return cls(load_weights(path), device)

    def solve(self, image: ImageInput, rules: AnswerRules | None = None) -> Prediction:
        """Read the text of one captcha image (``rules``: restrict the answers' case or alphabet)."""
        return self.solve_batch([image], rules)[0]

    def solve_batch(self, images: Sequence[ImageInput], rules: AnswerRules | None = None) -> list[Prediction]:
        """Read several images, one forward pass per width.

        Images of the same width (all of them, unless ``config.resize == "height"``) go through the
        model together; different widths are not padded into one batch, so an image reads the same
        whatever else is in its batch.
        """
        arrays = [to_array(image, self.config) for image in images]
        groups: dict[int, list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(array.shape[-1], []).append(index)
        predictions: list[Prediction | None] = [None] * len(arrays)
        for indices in groups.values():
            batch = torch.from_numpy(pad_batch([arrays[i] for i in indices])).to(self.device)
            with self._lock, torch.inference_mode():
                logits = self.model(batch)
            for index, prediction in zip(indices, self._decode(logits, rules)):
                predictions[index] = prediction
        return predictions  # type: ignore[return-value]

    def _decode(self, logits: torch.Tensor, rules: AnswerRules | None) -> list[Prediction]:
        if rules is not None:
            return rules.decode(logits, self.config)
        return decode(logits, self.config, self.codec)
