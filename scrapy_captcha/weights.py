"""Weights files: one ``.pt`` holding the state dict and everything needed to use it.

Files are read with ``torch.load(weights_only=True)``, which refuses anything but tensors and
plain containers, so loading a file never runs code from it. The same model exported for
onnxruntime (``python -m trainer export``) is a ``.onnx`` file read by
:mod:`scrapy_captcha.backends.onnx_backend`. Importing this module does not import torch.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ModelConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "scrapy-captcha-weights"
VERSION = 1
#: Where the bundled models live: each as ``NAME.pt`` (torch) and ``NAME.onnx`` (onnxruntime).
BUNDLED_DIR = Path(__file__).with_name("weights")
#: The bundled model for the torch backend.
BUNDLED_WEIGHTS = BUNDLED_DIR / "default.pt"
#: The same model exported for onnxruntime (a test keeps the two in agreement).
BUNDLED_ONNX = BUNDLED_WEIGHTS.with_suffix(".onnx")


#: The middleware's model when ``CAPTCHA_WEIGHTS`` is not set: the bundled route (see :mod:`scrapy_captcha.routing`).
DEFAULT_MODEL = "auto"


def bundled_models() -> list[str]:
    """The names of the bundled models (``"default"`` first), each usable as ``CAPTCHA_WEIGHTS``."""
    names = sorted(path.stem for path in BUNDLED_DIR.glob("*.pt"))
    return sorted(names, key=lambda name: name != "default")


def bundled_routes() -> list[str]:
    """The names of the bundled routes (``"auto"``, :mod:`scrapy_captcha.routing`), usable as ``CAPTCHA_WEIGHTS``."""
    return sorted(path.stem for path in BUNDLED_DIR.glob("*.json"))


def weights_path(value: str | Path | None) -> Path:
    """``CAPTCHA_WEIGHTS`` or ``--weights`` as a path: none means the default bundled model, a bare
    bundled model's name (``"generalist"``) means its ``.pt`` file, a bundled route's (``"auto"``) its
    ``.json`` file, anything else is a path."""
    if value is None or str(value) == "":
        return BUNDLED_WEIGHTS
    if Path(value).exists():  # a file of that name here wins over a bundled name
        return Path(value).expanduser()
    if str(value) in bundled_models():
        return BUNDLED_DIR / f"{value}.pt"
    if str(value) in bundled_routes():
        return BUNDLED_DIR / f"{value}.json"
    return Path(value).expanduser()


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
        from .model import build_model

        model = build_model(self.config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise WeightsError(f"weights do not fit a {self.config.arch!r} model: {exc}") from exc
        return model.to(device).eval()


def save_weights(path: str | Path, model: nn.Module, config: ModelConfig, summary: dict[str, Any] | None = None) -> Path:
    """Write a weights file atomically (a crash never leaves a half-written file at ``path``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        # contiguous: a model trained channels-last (trainer on the CPU) saves the same file as any other
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
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
    path = weights_path(path)
    check_file(path)
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch wraps the reason in advice to load unsafely; keep only the reason. A refused GLOBAL is
        # a function or class the file wanted imported; anything else means it is not a PyTorch file.
        boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith(boilerplate)]
        reason = lines[0] if lines else exc.__class__.__name__
        if "GLOBAL" in reason:
            raise WeightsError(f"{path}: refused to load, the file holds more than weights (code or foreign objects): {reason}") from exc
        raise WeightsError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {reason}") from exc
    except Exception as exc:  # unreadable bytes fail in many ways (BadZipFile, RuntimeError, KeyError, EOFError...)
        raise WeightsError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {exc.__class__.__name__}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a scrapy-captcha weights file (a plain state dict or another tool's checkpoint?)")
    if payload.get("version") != VERSION:
        raise WeightsError(f"{path}: weights format version {payload.get('version')!r} is not supported (expected {VERSION})")
    try:
        config = ModelConfig.from_dict(payload["config"])
        state_dict = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: damaged model settings: {exc!r}") from exc
    problem = _misfit(config, state_dict)
    if problem:
        raise WeightsError(f"{path}: weights do not fit a {config.arch!r} model with these settings: {problem}")
    summary = payload.get("summary") or {}
    return Weights(config, state_dict, summary if isinstance(summary, dict) else {})


def check_file(path: Path) -> None:
    """Raise :class:`WeightsError` unless ``path`` is an existing file."""
    if path.is_dir():
        raise WeightsError(f"weights file {str(path)!r} is a folder, not a file")
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")


def _misfit(config: ModelConfig, state_dict: Any) -> str | None:
    """What keeps ``state_dict`` from loading into the model ``config`` describes, or None."""
    import torch

    from .model import build_model

    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        return "the state dict is not a mapping of names to tensors"
    with torch.device("meta"):  # shapes only, no memory
        expected = {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong = [f"{name} is {tuple(state_dict[name].shape)}, expected {shape}"
             for name, shape in expected.items() if name in state_dict and tuple(state_dict[name].shape) != shape]
    parts = [f"missing {', '.join(missing[:5])}" if missing else "",
             f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
             "; ".join(wrong[:5])]
    return "; ".join(part for part in parts if part) or None
