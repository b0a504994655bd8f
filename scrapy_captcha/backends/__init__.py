"""Solver backends: the model's forward pass on a preprocessed numpy batch, with onnxruntime or torch.

Preprocessing (:mod:`scrapy_captcha.image`), decoding (:mod:`scrapy_captcha.codec`) and answer rules
(:mod:`scrapy_captcha.answers`) are numpy code shared by both, in :class:`scrapy_captcha.Solver`;
a backend only turns a ``(N, C, H, W)`` float32 array into logits. ``"auto"`` picks onnxruntime
for the bundled model and ``.onnx`` files on the CPU, torch for ``.pt`` files and GPU devices.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import ModelConfig
from ..errors import CaptchaSettingsError
from ..weights import BUNDLED_DIR, weights_path

BACKENDS = ("auto", "onnx", "torch")


class BackendError(CaptchaSettingsError):
    """A backend that is not installed, or that cannot read the weights file it was given."""


class Backend(Protocol):
    """Runs one model: ``run`` takes a float32 ``(N, C, H, W)`` batch and returns float32 logits."""

    name: str
    path: Path
    config: ModelConfig
    summary: dict[str, Any]

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def installed(backend: str) -> bool:
    """Whether ``backend``'s library ("onnx": onnxruntime, "torch": torch) can be imported."""
    return importlib.util.find_spec("onnxruntime" if backend == "onnx" else "torch") is not None


def resolve(path: str | Path | None, backend: str = "auto", device: str = "cpu") -> tuple[str, Path]:
    """Which backend reads which file: ``(backend, path)``, or a :class:`BackendError` saying why none can."""
    backend = (backend or "auto").strip().lower()
    if backend not in BACKENDS:
        raise BackendError(f"CAPTCHA_BACKEND must be one of {BACKENDS}, got {backend!r}")
    gpu = (device or "cpu").strip().lower() != "cpu"
    path = weights_path(path)
    if path.suffix.lower() == ".json":  # a route: each of its models is read in the form the backend takes
        if backend == "auto":
            backend = "torch" if gpu and installed("torch") else "onnx"
        return backend, path
    if path.resolve().parent == BUNDLED_DIR.resolve() and path.suffix in (".pt", ".onnx"):  # a bundled model: both forms ship
        if backend == "auto":
            backend = "torch" if gpu and installed("torch") else "onnx"
        return backend, path.with_suffix(".onnx" if backend == "onnx" else ".pt")
    is_onnx = path.suffix.lower() == ".onnx"
    if backend == "auto":
        backend = "onnx" if is_onnx else "torch"
    if backend == "onnx" and not is_onnx:
        raise BackendError(f"CAPTCHA_BACKEND 'onnx' reads .onnx files, not {str(path)!r}: export it with "
                           f"`python -m trainer export {path} --out {path.with_suffix('.onnx')}` and point CAPTCHA_WEIGHTS there")
    if backend == "torch" and is_onnx:
        raise BackendError(f"CAPTCHA_BACKEND 'torch' reads .pt weights files, not the ONNX file {str(path)!r}")
    return backend, path


def load_backend(path: str | Path | None = None, backend: str = "auto", device: str = "cpu",
                 threads: int | None = None) -> Backend:
    """Load the model at ``path`` (default: the bundled one) with ``backend``.

    ``threads``: intra-op threads of onnxruntime (default 1: a captcha is too small to share out,
    and a crawl solves several at once); torch keeps its own setting.
    """
    backend, path = resolve(path, backend, device)
    if not installed(backend):
        extra = "onnxruntime (part of the plain install)" if backend == "onnx" else "torch: pip install 'scrapy-captcha[torch]'"
        raise BackendError(f"the {backend} backend needs {extra}")
    if backend == "onnx":
        from .onnx_backend import OnnxBackend

        return OnnxBackend(path, device=device, threads=1 if threads is None else threads)
    from .torch_backend import TorchBackend

    return TorchBackend.from_path(path, device=device)
