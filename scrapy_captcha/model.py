"""Model definitions: the default CRNN, the seed notebook's VGG one-hot network and the style gate.

Both take a ``(N, channels, height, width)`` float tensor in ``[0, 1]`` (see
:func:`scrapy_captcha.image.to_array`). The CRNN returns ``(N, T, classes)`` CTC logits; the seed
network returns ``(N, max_length * len(alphabet))`` one-hot logits; the style gate returns ``(N,)``
logits that the image is in the style its route's first model reads (see :mod:`scrapy_captcha.routing`).
"""

from __future__ import annotations

import torch
from torch import nn

from .codec import Codec, Prediction
from .config import ARCHITECTURES, ModelConfig

__all__ = ["ARCHITECTURES", "CRNN", "ModelConfig", "SeedVGG", "StyleGate", "build_model", "count_parameters", "decode"]

def _conv(cin: int, cout: int, pool: tuple[int, int] | None) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(pool))
    return layers


class CRNN(nn.Module):
    """Convolutions that downsample early, a 1-D convolutional sequence head over the columns, CTC.

    The width is reduced 8 times, so a 160-pixel image gives 20 frames: room for up to 10
    characters, or 8 with repeated letters that CTC must separate with a blank. A convolutional
    sequence head learns much faster than a recurrent one here and escapes CTC's early plateau
    within a few hundred steps.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, hidden, widths = config.channels, config.hidden, config.widths
        layers: list[nn.Module] = [
            nn.Conv2d(c, widths[0], 3, stride=2, padding=1, bias=False),  # downsample before anything else: 3x faster
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for index, (before, after) in enumerate(zip(widths, widths[1:])):
            layers += _conv(before, after, (2, 2) if index < 2 else None)
        self.features = nn.Sequential(*layers)
        self.project = nn.Sequential(nn.Linear(widths[-1] * (config.height // 8), hidden), nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.sequence = nn.Sequential(
            nn.Conv1d(hidden, 2 * hidden, 3, padding=1, bias=False),
            nn.BatchNorm1d(2 * hidden),
            nn.ReLU(inplace=True),
            nn.Conv1d(2 * hidden, 2 * hidden, 3, padding=1, bias=False),
            nn.BatchNorm1d(2 * hidden),
            nn.ReLU(inplace=True),
        )
        self.frames_per_column = config.frames_per_column
        # each column's frames side by side: frame j of a column is rows j*classes .. (j+1)*classes-1
        self.classify = nn.Linear(2 * hidden, (len(config.alphabet) + 1) * config.frames_per_column)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features((x - 0.5) / 0.5)
        n, c, h, w = x.shape
        x = self.project(x.permute(0, 3, 1, 2).reshape(n, w, c * h))  # one frame per column
        x = self.sequence(x.transpose(1, 2)).transpose(1, 2)
        logits = self.classify(x)
        return logits if self.frames_per_column == 1 else logits.reshape(n, w * self.frames_per_column, -1)


class SeedVGG(nn.Module):
    """The seed notebook's network, layer for layer: four conv/ReLU/pool blocks and a 4096-wide FC.

    It reads 1x60x160 images and fixed-length text only.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if (config.channels, config.height, config.width) != (1, 60, 160):
            raise ValueError("seed-vgg reads 1x60x160 images only")

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

        self.layer1 = block(1, 64)
        self.layer2 = block(64, 128)
        self.layer3 = block(128, 256)
        self.layer4 = block(256, 512)
        self.layer5 = nn.Sequential(
            nn.Flatten(),
            nn.Linear(15360, 4096),
            nn.Dropout(0.5),
            nn.ReLU(),
            nn.Linear(4096, config.max_length * len(config.alphabet)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


class StyleGate(nn.Module):
    """A small classifier of an image's style: is it drawn the way one model of a route was trained on?

    Convolutions as the CRNN's (``widths``; the first strides, the next two pool), then the mean and
    the maximum of each channel over the whole image, so any width reads the same way, and one logit.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = config.widths
        layers: list[nn.Module] = [
            nn.Conv2d(config.channels, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for index, (before, after) in enumerate(zip(widths, widths[1:])):
            layers += _conv(before, after, (2, 2) if index < 2 else None)
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(2 * widths[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features((x - 0.5) / 0.5)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.classify(pooled).squeeze(1)


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model for ``config``."""
    return {"seed-vgg": SeedVGG, "style-gate": StyleGate}.get(config.arch, CRNN)(config)


def decode(logits: torch.Tensor, config: ModelConfig, codec: Codec | None = None) -> list[Prediction]:
    """Turn a batch of model outputs into predictions, whatever the head."""
    codec = codec or Codec(config.alphabet)
    if config.head == "one-hot":
        return codec.decode_one_hot(logits)
    return codec.decode_ctc(logits)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
