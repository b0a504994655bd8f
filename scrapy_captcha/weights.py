"""Weights files: one ``.pt`` holding the state dict and everything needed to use it.

Files are read with ``torch.load(weights_only=True)``, which refuses anything but tensors and
plain containers, so loading a file never runs code from it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .model import ModelConfig, build_model

FORMAT = "scrapy-captcha-weights"
VERSION = 1
BUNDLED_WEIGHTS = Path(__file__).with_name("weights") / "default.pt"


class WeightsError(ValueError):
    """A weights file that is missing, damaged, foreign or does not fit its model."""


@dataclass
class Weights:
    """A loaded weights file."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    summary: dict[str, Any] = field(default_factory=dict)

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The model with these weights, in eval mode, on ``device``."""
        model = build_model(self.config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise WeightsError(f"weights do not fit a {self.config.arch!r} model: {exc}") from exc
        return model.to(device).eval()


def save_weights(path: str | Path, model: nn.Module, config: ModelConfig, summary: dict[str, Any] | None = None) -> Path:
    """Write a weights file atomically (a crash never leaves a half-written file at ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "summary": summary or {},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a weights file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_weights(path: str | Path | None = None) -> Weights:
    """Read a weights file (default: the bundled model), refusing anything that is not one of ours."""
    path = Path(path) if path is not None else BUNDLED_WEIGHTS
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
        raise WeightsError(f"{path}: refused to load, the file holds more than weights (code or foreign objects): {reason}") from exc
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a scrapy-captcha weights file (a plain state dict or another tool's checkpoint?)")
    if payload.get("version") != VERSION:
        raise WeightsError(f"{path}: weights format version {payload.get('version')!r} is not supported (expected {VERSION})")
    try:
        config = ModelConfig.from_dict(payload["config"])
        state_dict = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: damaged model settings: {exc}") from exc
    return Weights(config, state_dict, payload.get("summary") or {})
