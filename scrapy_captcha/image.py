"""The one preprocessing path: image bytes or a PIL image -> a float32 ``(C, H, W)`` array in ``[0, 1]``.

The trainer and the solver both call :func:`to_array` (the trainer through :func:`to_tensor`, its
torch wrapper), so what a model sees in training is exactly what it sees in a crawl. Images of
different widths (``ModelConfig.resize == "height"``) are batched with :func:`pad_batch`.
This module needs numpy and Pillow only; torch is imported by :func:`to_tensor` and
:func:`pad_tensor_batch` alone.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from typing import TYPE_CHECKING, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .config import ModelConfig

if TYPE_CHECKING:
    import torch

ImageInput = Union[bytes, bytearray, memoryview, Image.Image]


#: Default cap on a captcha image's size in bytes (setting ``CAPTCHA_MAX_IMAGE_BYTES``). Captchas
#: weigh a few kilobytes; 2 MiB leaves room for photos of text without inviting huge downloads.
DEFAULT_MAX_IMAGE_BYTES = 2 * 1024 * 1024
#: Default cap on a captcha image's pixels, read from its header before decoding (setting
#: ``CAPTCHA_MAX_IMAGE_PIXELS``): 4 Mpx (e.g. 2000x2000) decodes to at most 16 MB as RGBA.
DEFAULT_MAX_IMAGE_PIXELS = 4_000_000


class InvalidImageError(ValueError):
    """Bytes that are not an image PIL can read."""


class ImageTooLargeError(InvalidImageError):
    """An image over the byte or pixel cap: refused before it is decoded."""


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


# Pillow's messages sometimes quote bytes of the file (a PNG chunk name): keep them out of logs.
_BYTES_REPR = re.compile(r"""b(['"]).*?(?<!\\)\1""")


def _kind(data: bytes) -> str | None:
    kind = next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "WebP"
    return kind


def _describe(data: bytes, error: Exception) -> str:
    head = bytes(data[:64]).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")):
        return "looks like HTML, not an image"
    if head.startswith((b"{", b"[")):
        return "looks like JSON, not an image"
    if not data:
        return "is empty"
    kind = _kind(data)
    if kind:
        detail = "" if isinstance(error, UnidentifiedImageError) else f" ({_BYTES_REPR.sub('<bytes>', str(error))})"
        return f"is a truncated or corrupt {kind} image{detail}"
    return "is not an image PIL can read (unknown format)"


# warnings.catch_warnings() swaps process-wide state: one thread at a time turns Pillow's
# decompression-bomb warning into an error.
_WARNINGS_LOCK = threading.Lock()


def _check_pixels(size: tuple[int, int], max_pixels: int | None, length: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        prefix = f"{length} bytes: " if length is not None else ""
        raise ImageTooLargeError(f"{prefix}the image declares {width}x{height} = {width * height:,} pixels, "
                                 f"over the cap of {max_pixels:,} pixels")


def load_image(data: ImageInput, *, max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
               max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode ``data`` fully, raising :class:`InvalidImageError` with a reason if it is not an image.

    ``max_bytes`` is checked before anything else and ``max_pixels`` from the image's header before
    decoding; over either, :class:`ImageTooLargeError`. ``None`` lifts a cap (Pillow's own
    decompression-bomb limit then still applies and raises the same error). A PIL image is checked
    against ``max_pixels`` only. Error messages give the length and the kind of the data, never
    the data itself.
    """
    if isinstance(data, Image.Image):
        _check_pixels(data.size, max_pixels, None)
        return data
    length = memoryview(data).nbytes
    if max_bytes is not None and length > max_bytes:
        raise ImageTooLargeError(f"{length:,} bytes: over the cap of {max_bytes:,} bytes for a captcha image")
    raw = bytes(data)
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
        _check_pixels(image.size, max_pixels, length)
        bomb = next((w.message for w in caught if issubclass(w.category, Image.DecompressionBombWarning)), None)
        if bomb is not None:
            raise ImageTooLargeError(f"{length} bytes: {_kind(raw) or 'an'} image too large to decode safely ({bomb})")
        image.load()
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit: raised inside Image.open
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        if max_pixels is not None and pixels:
            raise ImageTooLargeError(f"{length} bytes: the image declares {int(pixels[1]):,} pixels, "
                                     f"over the cap of {max_pixels:,} pixels") from exc
        raise ImageTooLargeError(f"{length} bytes: {_kind(raw) or 'an'} image too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{length} bytes: {_describe(raw, exc)}") from exc
    return image


def border_median(pixels: np.ndarray) -> np.ndarray:
    """The median of an image's outermost rows and columns (per channel for ``(H, W, C)``): its
    background's colour, as most captchas draw the text away from the edges."""
    return np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)


def _flatten(image: Image.Image, mode: str) -> Image.Image:
    """Convert to ``mode`` ('L' or 'RGB'), compositing any transparency over white."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = Image.fromarray(_scale_to_bytes(np.asarray(image)), "L")
    return image.convert(mode)


def _scale_to_bytes(array: np.ndarray) -> np.ndarray:
    """16/32-bit or float pixels -> uint8, scaled so the brightest pixel is 255 (no float64 copy)."""
    if array.dtype.kind == "f":
        array = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        np.clip(array, 0.0, None, out=array)
        top = float(array.max(initial=0.0)) or 1.0
        return (array * np.float32(255.0 / top)).astype(np.uint8)
    if array.dtype.itemsize <= 2 and array.dtype.kind == "u":  # 16-bit: exact in 32-bit integers
        wide = array.astype(np.uint32)
    else:  # 32-bit signed ("I"): negatives are black
        wide = np.clip(array, 0, None).astype(np.uint64)
    top = int(wide.max(initial=0)) or 1
    wide *= 255
    wide //= top
    return wide.astype(np.uint8)


def _fit(image: Image.Image, config: ModelConfig) -> tuple[Image.Image, int]:
    """Resize for the model; returns the image and the width the white canvas must have."""
    if config.resize == "height":
        scaled = max(1, round(image.width * config.height / image.height))
        width = min(max(scaled, 1), config.max_width)
        if image.size != (width, config.height):
            image = image.resize((width, config.height), Image.Resampling.BILINEAR)
        stride = config.width_stride
        canvas = -(-max(width, config.min_width) // stride) * stride  # round up to the stride
        return image, canvas
    size = (config.width, config.height)
    if image.size == size:
        return image, config.width
    if config.resize == "stretch":
        return image.resize(size, Image.Resampling.BILINEAR), config.width
    scale = min(config.width / image.width, config.height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(inner, Image.Resampling.BILINEAR), config.width


def to_array(data: ImageInput, config: ModelConfig, *, max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
             max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Preprocess one image into a float32 ``(channels, height, width)`` array in ``[0, 1]``.

    ``width`` is ``config.width``, except in ``"height"`` mode where it follows the image (a multiple
    of ``config.width_stride`` between ``min_width`` and ``max_width`` rounded up). Whatever is not
    image is white (1.0). The caps are :func:`load_image`'s.
    """
    image = _flatten(load_image(data, max_bytes=max_bytes, max_pixels=max_pixels), "L" if config.channels == 1 else "RGB")
    image, width = _fit(image, config)
    return _to_canvas(image, width, config)


def _to_canvas(image: Image.Image, width: int, config: ModelConfig) -> np.ndarray:
    """The fitted image's pixels / 255 as float32 ``(C, height, width)``, white (1.0) where the image does not reach."""
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    # dividing (not multiplying by 1/255) gives the same floats as the torch path the weights were trained on
    if pixels.shape[1:] == (config.height, width):  # the usual case: no white to add, no canvas to fill first
        return np.divide(pixels, np.float32(255.0), dtype=np.float32, order="C")
    array = np.ones((config.channels, config.height, width), dtype=np.float32)
    np.divide(pixels, np.float32(255.0), out=array[:, : pixels.shape[1], : pixels.shape[2]], dtype=np.float32)
    return array


def pad_batch(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``(C, H, W_i)`` arrays into one ``(N, C, H, max W_i)`` array, padding on the right with white."""
    if not arrays:
        raise ValueError("pad_batch needs at least one image")
    if len(arrays) == 1:
        return arrays[0][None]
    width = max(array.shape[-1] for array in arrays)
    batch = np.ones((len(arrays), *arrays[0].shape[:-1], width), dtype=np.float32)
    for row, array in zip(batch, arrays):
        row[..., : array.shape[-1]] = array
    return batch


def to_tensor(data: ImageInput, config: ModelConfig, **caps: int | None) -> torch.Tensor:
    """:func:`to_array` as a torch tensor (for the trainer)."""
    import torch

    return torch.from_numpy(to_array(data, config, **caps))


def pad_tensor_batch(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`pad_batch` for torch tensors: a DataLoader collate's way to stack images of mixed widths."""
    import torch

    width = max(tensor.shape[-1] for tensor in tensors)
    return torch.stack([torch.nn.functional.pad(tensor, (0, width - tensor.shape[-1]), value=1.0) for tensor in tensors])
