"""The model's settings, stored inside every weights file (``.pt`` and ``.onnx``); no torch needed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .codec import SEED_ALPHABET, Codec

ARCHITECTURES = ("crnn", "seed-vgg", "style-gate")
#: The architectures that read text (a ``style-gate`` says which model should read an image).
READERS = ("crnn", "seed-vgg")
RESIZE_MODES = ("stretch", "pad", "height")
#: The CRNN's convolution widths before ``widths`` was a setting: weights files without it have these.
CRNN_WIDTHS = (32, 48, 96, 128, 128)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and feed it: stored inside every weights file.

    ``resize`` says how an image meets the model's input:

    - ``"stretch"``: resized to ``width`` x ``height``, whatever its aspect ratio;
    - ``"pad"``: scaled to fit inside ``width`` x ``height`` keeping its aspect ratio, padded with white;
    - ``"height"`` (CRNN only): scaled to ``height`` keeping its aspect ratio, its width clamped to
      ``min_width``..``max_width`` (a narrower image is padded with white, a wider one squeezed), then
      padded with white on the right to a multiple of :attr:`width_stride`. Inputs then differ in
      width; :func:`scrapy_captcha.image.pad_batch` pads a batch of them. ``width`` is unused.

    ``widths`` (CRNN only) are the output channels of its convolutions, first to last: the first
    one strides, the next two pool, any further ones keep the size.

    ``frames_per_column`` (CRNN only): CTC frames the head writes for each column of the feature map
    (8 input pixels); 2 gives a narrow glyph beside another a frame of its own.
    """

    arch: str = "crnn"
    alphabet: str = SEED_ALPHABET
    height: int = 60
    width: int = 160
    channels: int = 1
    max_length: int = 8
    case_sensitive: bool = True
    resize: str = "stretch"
    hidden: int = 128
    min_width: int = 32
    max_width: int = 800
    widths: tuple[int, ...] = CRNN_WIDTHS
    frames_per_column: int = 1

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {ARCHITECTURES}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, not {self.resize!r}")
        if self.resize == "height" and self.arch == "seed-vgg":
            raise ValueError(f"resize 'height' needs a model that reads any width (crnn, style-gate), not {self.arch!r}")
        if not 1 <= self.min_width <= self.max_width:
            raise ValueError(f"min_width ({self.min_width}) must be at least 1 and at most max_width ({self.max_width})")
        self.widths = tuple(int(w) for w in self.widths)  # a list after a round trip through JSON
        if len(self.widths) < 3 or min(self.widths) < 1:
            raise ValueError(f"widths must be at least three positive convolution widths, not {self.widths}")
        if self.frames_per_column not in (1, 2, 3, 4) or (self.frames_per_column > 1 and self.arch != "crnn"):
            raise ValueError(f"frames_per_column must be 1 to 4, and 1 unless the architecture is crnn, not "
                             f"{self.frames_per_column} ({self.arch})")
        Codec(self.alphabet)  # validates the alphabet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Rebuild from a weights file's settings; settings added since (``min_width``...) take their defaults."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**data)

    @property
    def head(self) -> str:
        return {"seed-vgg": "one-hot", "style-gate": "gate"}.get(self.arch, "ctc")

    @property
    def width_stride(self) -> int:
        """Input columns per output frame: widths in ``"height"`` mode are padded to a multiple of it."""
        return self.width if self.arch == "seed-vgg" else 8

    @property
    def input_key(self) -> tuple:
        """What :func:`scrapy_captcha.image.to_array` makes of an image depends on these alone: two
        models with equal keys read the same array."""
        return (self.channels, self.height, self.width, self.resize, self.min_width, self.max_width, self.width_stride)

    def frames(self, width: int) -> int:
        """Output frames (CTC time steps) of the CRNN for an input ``width`` pixels wide."""
        return width // self.width_stride * self.frames_per_column
