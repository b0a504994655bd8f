"""Preprocessing: odd image modes, sizes and formats go through one function; bad bytes say what they are."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, features

from scrapy_captcha.image import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    InvalidImageError,
    load_image,
    to_tensor,
)
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
        (b"plain text, not a picture", r"not an image PIL can read \(unknown format\)"),
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


def png_header_only(width: int, height: int, bit_depth: int = 8, colour_type: int = 0, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height``, with a tiny IDAT: small on the wire, huge decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zero_png(width: int, height: int, bit_depth: int) -> bytes:
    """A real, complete greyscale PNG of zeros, compressed row by row (never held decoded in memory)."""
    row = bytes(1 + width * bit_depth // 8)  # filter byte + pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return png_header_only(width, height, bit_depth, 0, idat)


# the first 139 bytes of the zlib stream of its rows (the rest never gets read): 196 bytes in all
BOMB_900_MPX = png_header_only(30000, 30000, idat=zlib.compress(bytes(30001 * 30000), 9)[:139])


def test_the_bomb_is_small_on_the_wire():
    assert len(BOMB_900_MPX) == 196


@pytest.mark.parametrize("max_pixels", [DEFAULT_MAX_IMAGE_PIXELS, None], ids=["our-cap", "pillow-limit"])
def test_a_196_byte_png_declaring_900_mpx_is_refused_before_decoding(max_pixels):
    with pytest.raises(ImageTooLargeError, match="196 bytes: ") as info:
        load_image(BOMB_900_MPX, max_pixels=max_pixels)
    assert isinstance(info.value, InvalidImageError)
    if max_pixels is not None:
        assert "declares 900,000,000 pixels, over the cap of 4,000,000 pixels" in str(info.value)
    else:
        assert "PNG image too large to decode safely" in str(info.value)


@pytest.fixture(scope="module")
def huge_sixteen_bit_png():
    return zero_png(13000, 13000, 16)  # 169 Mpx, 2 bytes each: 338 MB decoded


def test_a_huge_sixteen_bit_png_is_refused_from_its_header(huge_sixteen_bit_png):
    data = huge_sixteen_bit_png
    assert len(data) < DEFAULT_MAX_IMAGE_BYTES
    with pytest.raises(ImageTooLargeError, match=r"13000x13000 = 169,000,000 pixels, over the cap"):
        to_tensor(data, GRAY)
    # without our cap, Pillow's decompression-bomb warning (over 89 Mpx) becomes the same error
    with pytest.raises(ImageTooLargeError, match="too large to decode safely"):
        load_image(data, max_pixels=None)


def test_the_pixel_cap_is_a_setting_not_a_constant():
    data = encode(Image.new("L", (200, 100), 255))
    assert load_image(data, max_pixels=20_000).size == (200, 100)
    with pytest.raises(ImageTooLargeError, match="200x100 = 20,000 pixels, over the cap of 19,999 pixels"):
        load_image(data, max_pixels=19_999)
    with pytest.raises(ImageTooLargeError, match="over the cap of 19,999 pixels"):
        load_image(Image.new("L", (200, 100)), max_pixels=19_999)  # decoded images are checked too


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_the_byte_cap_comes_before_anything_else(kind):
    data = b"\x89PNG\r\n\x1a\n" + bytes(5000)  # not even a valid PNG: the size alone refuses it
    with pytest.raises(ImageTooLargeError, match=r"^5,008 bytes: over the cap of 4,096 bytes"):
        load_image(kind(data), max_bytes=4096)
    with pytest.raises(InvalidImageError, match="truncated or corrupt PNG") as info:
        load_image(kind(data), max_bytes=None)
    assert not isinstance(info.value, ImageTooLargeError)


def test_a_normal_sixteen_bit_image_keeps_its_levels_in_integer_arithmetic():
    levels = np.array([0, 257, 32768, 65535], dtype=np.uint16)
    array = np.repeat(levels, 40)[None].repeat(60, axis=0)
    tensor = to_tensor(encode(Image.fromarray(array)), GRAY)
    expected = (levels.astype(np.uint32) * 255 // 65535).astype(np.float32) / 255  # 0, 1, 127, 255
    assert torch.equal(tensor[0, 0, ::40], torch.from_numpy(expected))
    dim = (array // 2).astype(np.uint16)  # scaled to its own brightest pixel, as before
    assert torch.equal(to_tensor(encode(Image.fromarray(dim)), GRAY)[0, 0, -1], torch.tensor(1.0))


@pytest.mark.parametrize("mode, array", [
    ("I", np.array([[-5, 0, 1000, 2**31 - 1]], dtype=np.int32).repeat(60, 0).repeat(40, 1)),
    ("F", np.array([[np.nan, -1.0, 0.5, 1.0]], dtype=np.float32).repeat(60, 0).repeat(40, 1)),
])
def test_thirty_two_bit_images_scale_without_overflow(mode, array):
    image = Image.fromarray(array, mode)
    row = to_tensor(image, GRAY)[0, 0, ::40]
    assert row[0] == 0 and row[1] == 0 and row[-1] == 1.0 and 0 <= row[2] <= 1.0


def test_errors_never_quote_the_data():
    secret = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon"
    for data in (secret, b"\x89PNG\r\n\x1a\n" + secret, b"GIF89a" + secret):
        with pytest.raises(InvalidImageError) as info:
            load_image(data)
        assert b"root" not in str(info.value).encode() and "daemon" not in str(info.value), str(info.value)
        assert str(info.value).startswith(f"{len(data)} bytes: ")
