"""The demo site's captcha images: what :mod:`example_project.demo_site` serves at ``/captcha/image``.

* style ``"captcha"`` (the default): the ``captcha`` library's images, 160x60, of ``length``
  characters of :data:`ALPHABET` (the seed model's alphabet);
* styles ``"ribbon"`` and ``"night"``: :mod:`example_project.demo_styles`, styles the bundled model
  was not trained on;
* the arithmetic mode: a sum such as ``"7+4=?"`` (:func:`arithmetic_challenge`) drawn by
  :func:`draw_arithmetic`; the answer is its result.

:class:`CaptchaDrawer` draws a fresh image and gives its expected answer; the site binds that
answer to the session that fetched the image.
"""

from __future__ import annotations

import io
import secrets
import threading
from typing import Any

try:
    from captcha.image import ImageCaptcha
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "example_project.demo_site draws its captchas with the `captcha` library: "
        "pip install 'scrapy-captcha[trainer]'"
    ) from exc

# The seed model's alphabet: scrapy_captcha.codec.SEED_ALPHABET (a test keeps them equal). Not
# imported, so that the site starts without loading torch.
ALPHABET = "0123456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
IMAGE_WIDTH, IMAGE_HEIGHT = 160, 60
CAPTCHA_STYLES = ("captcha", "ribbon", "night")  # the last two: example_project/demo_styles.py, unseen by the bundled model
ARITHMETIC_OPERATORS = ("+", "-", "x")


def arithmetic_challenge(rng: Any) -> tuple[str, str]:
    """A sum for the arithmetic mode, e.g. ``("7+4=?", "11")``: text to draw and the answer."""
    a, b, operator = rng.randint(0, 20), rng.randint(0, 9), rng.choice(ARITHMETIC_OPERATORS)
    if operator == "-" and b > a:
        a, b = b, a
    result = a + b if operator == "+" else a - b if operator == "-" else a * b
    return f"{a}{operator}{b}=?", str(result)


def draw_arithmetic(text: str) -> Any:
    """The arithmetic mode's image of ``text`` (a PIL image): dark text on a pale background, a
    line across it; drawn with the font the ``captcha`` package ships. Usable as a trainer plug-in
    (``--generator example_project.demo_captchas:draw_arithmetic``)."""
    import os
    import random

    import captcha
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(os.path.join(os.path.dirname(captcha.__file__), "data", "DroidSansMono.ttf"), 24)
    image = Image.new("RGB", (20 + 15 * len(text), 40), (245, 244, 236))
    draw = ImageDraw.Draw(image)
    draw.text((10 + random.randint(-3, 3), 20 + random.randint(-3, 3)), text, font=font, fill=(30, 30, 90), anchor="lm")
    y = random.randint(8, 32)
    draw.line([(0, y), (image.width, y + random.randint(-8, 8))], fill=(150, 150, 170), width=1)
    return image


class CaptchaDrawer:
    """Draws the demo site's captcha images; safe to call from the site's handler threads."""

    def __init__(self) -> None:
        self._captcha = ImageCaptcha(IMAGE_WIDTH, IMAGE_HEIGHT)
        self._captcha_lock = threading.Lock()  # fonts are shared FreeType objects

    def draw(self, length: int, style: str = "captcha", arithmetic: bool = False) -> tuple[bytes, str]:
        """A fresh PNG and its expected answer: its text, or in arithmetic mode the sum's result."""
        if arithmetic:
            return self._draw_arithmetic()
        text = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if style != "captcha":
            from .demo_styles import STYLES

            png = STYLES[style](text, secrets.SystemRandom())
        else:
            with self._captcha_lock:
                png = self._captcha.generate(text, format="png").getvalue()
        return png, text

    def _draw_arithmetic(self) -> tuple[bytes, str]:
        text, answer = arithmetic_challenge(secrets.SystemRandom())
        buffer = io.BytesIO()
        draw_arithmetic(text).save(buffer, "PNG")
        return buffer.getvalue(), answer
