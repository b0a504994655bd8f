"""Preprocessing: odd image modes, sizes and formats go through one function; bad bytes say what they are."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, features

from scrapy_captcha.image import InvalidImageError, load_image, to_tensor
from scrapy_captcha.model import ModelConfig

GRAY = ModelConfig()
RGB = ModelConfig(channels=3)
PAD = ModelConfig(resize="pad")


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def square_on_transparent(mode: str = "RGBA") -> Image.Image:
    """Fully transparent black everywhere except an opaque black square at (10..30, 10..30)."""
    image = Image.new("RGBA", (160, 60), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (10, 10, 30, 30))
    return image.convert(mode)


def assert_square_on_white(tensor: torch.Tensor) -> None:
    assert torch.all(tensor[:, 10:30, 10:30] == 0.0)
    outside = tensor.clone()
    outside[:, 10:30, 10:30] = 1.0
    assert torch.all(outside == 1.0), "transparent pixels must come out white"


def test_rgb_png_gives_a_unit_range_tensor_of_the_model_size():
    array = np.random.default_rng(0).integers(0, 256, (60, 160, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    tensor = to_tensor(encode(image), GRAY)
    assert tensor.shape == (1, 60, 160) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    expected = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255)
    assert torch.allclose(tensor[0], expected)
    colour = to_tensor(encode(image), RGB)
    assert colour.shape == (3, 60, 160)
    assert torch.allclose(colour, torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1))


def test_bytes_bytearray_memoryview_and_pil_agree():
    image = Image.effect_noise((160, 60), 50).convert("L")
    data = encode(image)
    reference = to_tensor(image, GRAY)
    for variant in (data, bytearray(data), memoryview(data)):
        assert torch.equal(to_tensor(variant, GRAY), reference)


@pytest.mark.parametrize("config", [GRAY, RGB], ids=["gray", "rgb"])
def test_rgba_transparent_pixels_become_white(config):
    tensor = to_tensor(encode(square_on_transparent("RGBA")), config)
    assert tensor.shape == (config.channels, 60, 160)
    assert_square_on_white(tensor)


def test_la_transparent_pixels_become_white():
    assert_square_on_white(to_tensor(encode(square_on_transparent("LA")), GRAY))


def test_palette_with_transparency():
    image = Image.new("P", (160, 60), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, 1 red
    image.paste(1, (10, 10, 30, 30))
    data = encode(image, transparency=0)  # index 0 is transparent: black there must not show
    tensor = to_tensor(data, RGB)
    assert torch.all(tensor[:, :10, :] == 1.0)
    assert tensor[:, 20, 20].tolist() == [1.0, 0.0, 0.0]
    gray = to_tensor(data, GRAY)
    assert torch.all(gray[:, :10, :] == 1.0)
    assert gray[0, 20, 20] == pytest.approx(76 / 255)  # ITU-R 601 luma of pure red


def test_palette_without_transparency():
    image = Image.effect_noise((160, 60), 60).convert("RGB").quantize(16)
    assert image.mode == "P" and "transparency" not in image.info
    tensor = to_tensor(encode(image), RGB)
    expected = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(tensor, expected)


def test_gif_with_transparency():
    image = square_on_transparent("RGBA").convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    transparent_index = image.getpixel((0, 0))
    data = encode(image, "GIF", transparency=transparent_index)
    assert_square_on_white(to_tensor(data, GRAY))


def test_grayscale_l():
    array = np.tile(np.arange(160, dtype=np.uint8), (60, 1))
    tensor = to_tensor(encode(Image.fromarray(array, "L")), GRAY)
    assert torch.equal(tensor[0], torch.from_numpy(array).float() / 255)
    assert torch.equal(to_tensor(Image.fromarray(array, "L"), RGB), tensor.expand(3, -1, -1))


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 160), (60, 1)).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    tensor = to_tensor(encode(image), GRAY)  # PNG keeps 16 bits
    expected = torch.from_numpy(ramp / 65535).float()
    assert torch.allclose(tensor[0], expected, atol=1.5 / 255)
    assert torch.allclose(to_tensor(image, GRAY)[0], expected, atol=1.5 / 255)


def test_one_bit_image():
    array = np.zeros((60, 160), dtype=bool)
    array[:, 80:] = True
    tensor = to_tensor(encode(Image.fromarray(array)), GRAY)
    assert torch.all(tensor[0, :, :80] == 0.0) and torch.all(tensor[0, :, 80:] == 1.0)


def test_wrong_size_is_stretched_to_the_model_size():
    image = Image.new("L", (320, 200), 255)
    image.paste(0, (0, 0, 160, 200))  # left half black
    tensor = to_tensor(encode(image), GRAY)
    assert tensor.shape == (1, 60, 160)
    assert torch.all(tensor[0, :, :78] == 0.0) and torch.all(tensor[0, :, 82:] == 1.0)


def test_pad_mode_keeps_the_aspect_ratio_and_pads_with_white():
    square = Image.new("L", (100, 100), 0)
    padded = to_tensor(encode(square), PAD)
    assert padded.shape == (1, 60, 160)
    assert torch.all(padded[0, :, :60] == 0.0)  # 100x100 scaled to 60x60, at the left
    assert torch.all(padded[0, :, 60:] == 1.0)
    assert torch.all(to_tensor(square, GRAY) == 0.0)  # stretch mode fills the frame
    wide = Image.new("RGB", (320, 60), (0, 0, 0))
    padded = to_tensor(wide, ModelConfig(resize="pad", channels=3))
    assert torch.all(padded[:, :30, :] == 0.0) and torch.all(padded[:, 30:, :] == 1.0)  # 160x30 at the top


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_other_formats(fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    image = Image.new("RGB", (160, 60), (255, 255, 255))
    image.paste((0, 0, 0), (40, 10, 120, 50))
    tensor = to_tensor(encode(image, fmt), GRAY)
    assert tensor.shape == (1, 60, 160)
    assert tensor[0, 30, 80] < 0.1 and tensor[0, 2, 2] > 0.9


def test_multi_frame_gif_uses_the_first_frame():
    frames = [Image.new("L", (160, 60), value) for value in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert torch.all(to_tensor(buffer.getvalue(), GRAY) < 0.05)


def truncated_png() -> bytes:
    data = encode(Image.effect_noise((160, 60), 60))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", "looks like HTML"),
        (b"  \n<html><head><title>Captcha</title></head></html>", "looks like HTML"),
        (b'{"error": "rate limited"}', "looks like JSON"),
        (b"", "is empty"),
        (truncated_png(), "truncated or corrupt PNG image"),
        (encode(Image.new("RGB", (160, 60)), "JPEG")[:200], "truncated or corrupt JPEG image"),
        (b"\x89PNG\r\n\x1a\n", "truncated or corrupt PNG image"),
        (b"GIF89a", "truncated or corrupt GIF image"),
        (b"plain text, not a picture", r"not an image PIL can read \(starts with b'plain text, '\)"),
    ],
    ids=["html", "html-leading-space", "json", "empty", "truncated-png", "truncated-jpeg", "png-signature-only",
         "gif-header-only", "text"],
)
def test_bad_bytes_say_what_is_wrong(data, message):
    with pytest.raises(InvalidImageError, match=message) as info:
        to_tensor(data, GRAY)
    assert str(info.value).startswith(f"{len(data)} bytes: ")
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidImageError):
        load_image(data)
