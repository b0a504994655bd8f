"""The torch backend: ``.pt`` weights files on any torch device (needs ``scrapy-captcha[torch]``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CaptchaSettingsError
from ..weights import Weights, load_weights


def resolve_device(device: str) -> str:
    """Check a torch device name; ``auto`` picks CUDA when there is one."""
    device = device.strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise CaptchaSettingsError(f"CAPTCHA_DEVICE {device!r} is not a torch device: {exc}") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise CaptchaSettingsError(f"CAPTCHA_DEVICE is {device!r} but torch sees no CUDA device")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise CaptchaSettingsError(f"CAPTCHA_DEVICE is {device!r} but MPS is not available")
    return device


class TorchBackend:
    """A torch model in eval mode; one forward pass at a time (they share torch's thread pool)."""

    name = "torch"

    def __init__(self, weights: Weights, device: str = "cpu", path: Path | None = None):
        self.weights = weights
        self.config = weights.config
        self.summary: dict[str, Any] = weights.summary
        self.path = path or Path("<in memory>")
        self.device = torch.device(resolve_device(device))
        self.model = weights.build(self.device)
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path: str | Path, device: str = "cpu") -> "TorchBackend":
        return cls(load_weights(path), device, Path(path))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a float32 ``(N, C, H, W)`` batch."""
        with self._lock, torch.inference_mode():
            logits = self.model(torch.from_numpy(batch).to(self.device))
        return logits.float().cpu().numpy()
