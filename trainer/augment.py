"""Training-time augmentation with torchvision v2, on ``[0, 1]`` image tensors."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def _clamp(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_(0.0, 1.0)


def build_augmentation() -> v2.Compose:
    """Small geometric, blur, contrast and noise changes; the background fill is white."""
    return v2.Compose(
        [
            v2.RandomApply([v2.RandomAffine(degrees=4, translate=(0.04, 0.08), scale=(0.9, 1.08), shear=(-8, 8), fill=1.0)], p=0.5),
            v2.RandomApply([v2.RandomPerspective(distortion_scale=0.15, p=1.0, fill=1.0)], p=0.2),
            v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 1.0))], p=0.2),
            v2.RandomApply([v2.ColorJitter(brightness=0.25, contrast=0.3)], p=0.3),
            v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=0.2),
            v2.Lambda(_clamp),
        ]
    )
