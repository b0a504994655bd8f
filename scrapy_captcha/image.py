"""The one preprocessing path: image bytes or a PIL image -> a ``[0, 1]`` tensor of the model's size.

The trainer and the middleware both call :func:`to_tensor`, so what a model sees in training is
exactly what it sees in a crawl.
"""

from __future__ import annotations

import io
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .model import ModelConfig

ImageInput = Union[bytes, bytearray, memoryview, Image.Image]


class InvalidImageError(ValueError):
    """Bytes that are not an image PIL can read."""


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _describe(data: bytes, error: Exception) -> str:
    head = bytes(data[:64]).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")):
        return "looks like HTML, not an image"
    if head.startswith((b"{", b"[")):
        return "looks like JSON, not an image"
    if not data:
        return "is empty"
    kind = next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "WebP"
    if kind:
        detail = "" if isinstance(error, UnidentifiedImageError) else f" ({error})"
        return f"is a truncated or corrupt {kind} image{detail}"
    return f"is not an image PIL can read (starts with {bytes(data[:12])!r})"


def load_image(data: ImageInput) -> Image.Image:
    """Decode ``data`` fully, raising :class:`InvalidImageError` with a reason if it is not an image."""
    if isinstance(data, Image.Image):
        return data
    raw = bytes(data)
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{len(raw)} bytes: {_describe(raw, exc)}") from exc
    return image


def _flatten(image: Image.Image, mode: str) -> Image.Image:
    """Convert to ``mode`` ('L' or 'RGB'), compositing any transparency over white."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode in ("I", "I;16", "I;16B", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / top)).astype(np.uint8))
    return image.convert(mode)


def _fit(image: Image.Image, config: ModelConfig) -> Image.Image:
    size = (config.width, config.height)
    if image.size == size:
        return image
    if config.resize == "stretch":
        return image.resize(size, Image.Resampling.BILINEAR)
    scale = min(config.width / image.width, config.height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new(image.mode, size, 255 if image.mode == "L" else (255, 255, 255))
    canvas.paste(image.resize(inner, Image.Resampling.BILINEAR), (0, 0))
    return canvas


def to_tensor(data: ImageInput, config: ModelConfig) -> torch.Tensor:
    """Preprocess one image into a ``(channels, height, width)`` float tensor in ``[0, 1]``."""
    image = _fit(_flatten(load_image(data), "L" if config.channels == 1 else "RGB"), config)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy()).float().div_(255.0)
