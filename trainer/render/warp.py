"""Whole-image geometry: sine and elastic warps and shear in one mesh transform, and perspective."""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image

Colour = tuple[int, int, int]


def mesh_warp(image: Image.Image, rng: random.Random, difficulty: float, fill: Colour) -> Image.Image:
    """A sine wave, elastic wobble and shear, each on or off at random, as one MESH transform.

    The image is cut into cells; each output cell samples the input quad whose corners are the
    cell's corners moved by the displacement field, so neighbouring cells stay joined.
    """
    w, h = image.size
    d = difficulty
    sine = rng.random() < 0.2 + 0.5 * d
    elastic = rng.random() < 0.1 + 0.4 * d
    shear = rng.uniform(-0.1 - 0.3 * d, 0.1 + 0.3 * d) if rng.random() < 0.2 + 0.4 * d else 0.0
    if not (sine or elastic or shear):
        return image
    amplitude = rng.uniform(0.02, 0.04 + 0.1 * d) * h if sine else 0.0
    period = rng.uniform(0.25, 1.2) * w
    phase = rng.uniform(0, 2 * math.pi)
    horizontal = rng.random() < 0.3  # the wave also moves columns sideways
    cols, rows = min(24, max(2, w // 16)), min(6, max(2, h // 14))  # each cell costs a Python-level call in PIL
    xs = np.linspace(0, w, cols + 1)
    ys = np.linspace(0, h, rows + 1)
    gx, gy = np.meshgrid(xs, ys)
    dy = amplitude * np.sin(2 * np.pi * gx / period + phase)
    dx = shear * (gy - h / 2) + (0.5 * amplitude * np.sin(2 * np.pi * gy / (period / 2) + phase) if horizontal else 0.0)
    if elastic:
        arr_rng = np.random.default_rng(rng.getrandbits(32))
        strength = rng.uniform(0.01, 0.02 + 0.03 * d) * h
        dx = dx + _smooth_noise(arr_rng, gx.shape, strength)
        dy = dy + _smooth_noise(arr_rng, gy.shape, strength)
    sx, sy = gx + dx, gy + dy
    mesh = []
    for r in range(rows):
        for c in range(cols):
            box = (int(xs[c]), int(ys[r]), int(xs[c + 1]), int(ys[r + 1]))
            quad = (sx[r, c], sy[r, c], sx[r + 1, c], sy[r + 1, c], sx[r + 1, c + 1], sy[r + 1, c + 1], sx[r, c + 1], sy[r, c + 1])
            mesh.append((box, quad))
    return image.transform(image.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR, fillcolor=fill)


def _smooth_noise(arr_rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    """Noise at every third node, interpolated between: a wobble, not a jitter."""
    rows, cols = shape
    coarse = arr_rng.normal(0, strength, (rows // 3 + 2, cols // 3 + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((cols, rows), Image.Resampling.BILINEAR))


def perspective(image: Image.Image, rng: random.Random, difficulty: float, fill: Colour) -> Image.Image:
    """Tilt the image as if photographed at an angle (corners moved by up to ~15% of the size)."""
    w, h = image.size
    reach = 0.02 + 0.06 * difficulty
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [(x + rng.uniform(-reach, reach) * w, y + rng.uniform(-reach, reach) * h) for x, y in corners]
    matrix, target = [], []
    for (x, y), (u, v) in zip(corners, moved):  # maps output corner (x, y) to input point (u, v)
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        target += [u, v]
    coefficients = np.linalg.solve(np.asarray(matrix, dtype=np.float64), np.asarray(target, dtype=np.float64))
    return image.transform(image.size, Image.Transform.PERSPECTIVE, tuple(coefficients), Image.Resampling.BILINEAR, fillcolor=fill)
