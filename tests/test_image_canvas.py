"""The preprocessing's last step gives bit for bit the floats it gave before it skipped filling a
white canvas first (the weights were trained on those), for every resize mode, filled or padded,
grey or colour; and a lone solve, which skips solve_batch's grouping, reads as solve_batch reads it alone."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from scrapy_captcha import Solver
from scrapy_captcha.image import to_array
from scrapy_captcha.model import ModelConfig


def previous_to_array(image: Image.Image, config: ModelConfig) -> np.ndarray:
    """to_array as it was written before (white canvas, then the pixels divided into it)."""
    from scrapy_captcha.image import _fit, _flatten

    image, width = _fit(_flatten(image, "L" if config.channels == 1 else "RGB"), config)
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    array = np.ones((config.channels, config.height, width), dtype=np.float32)
    np.divide(pixels, np.float32(255.0), out=array[:, : pixels.shape[1], : pixels.shape[2]], dtype=np.float32)
    return array


CONFIGS = {
    "stretch-grey": ModelConfig(),
    "stretch-colour": ModelConfig(channels=3),
    "pad-grey": ModelConfig(resize="pad"),
    "height-grey": ModelConfig(resize="height", height=48, hidden=192),
    "height-colour-narrow-minimum": ModelConfig(resize="height", height=32, channels=3, min_width=96),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("size", [(160, 60), (128, 48), (93, 41), (400, 50), (20, 70)])
def test_to_array_is_bit_identical_to_the_canvas_formula(name, size):
    config = CONFIGS[name]
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    got, expected = to_array(buffer.getvalue(), config), previous_to_array(image, config)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()  # every bit, white padding included


def test_every_byte_value_maps_to_the_same_float():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    config = ModelConfig(height=16, width=16)
    expected = np.divide(levels, np.float32(255.0), dtype=np.float32)[None]
    assert to_array(Image.fromarray(levels, "L"), config).tobytes() == expected.tobytes()
    assert len(set(expected.ravel().tolist())) == 256


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_lone_solve_reads_as_solve_batch(backend, one_thread):
    import random

    from captcha.image import ImageCaptcha

    random.seed(11)  # the captcha library draws its noise with random
    solver = Solver.from_path(backend=backend)
    images = [ImageCaptcha(160, 60).generate(text).getvalue() for text in ("ab3K", "x7Qm", "PP2d")]
    wide = io.BytesIO()
    Image.new("L", (300, 80), 255).save(wide, "PNG")
    images.append(wide.getvalue())
    for image in images:
        alone, (batched,) = solver.solve(image), solver.solve_batch([image])
        assert (alone.text, alone.confidence, alone.char_confidences) == (batched.text, batched.confidence, batched.char_confidences)
    assert solver.solve(images[0]).text.lower() == "ab3k"
