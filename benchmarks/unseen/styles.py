"""The held-out styles: which captcha package draws each set, with which options.

Each :class:`Style` names a PyPI generator (never the ``captcha`` package the bundled model trains
on), the pinned requirements of its own virtual environment (``.venv-unseen-<venv>/``: several of
these packages clash on the module name ``captcha`` or need Pillow < 10), and a ``draw`` function
that returns ``(label, PIL image)`` for one image. Labels are the text the generator was asked to
draw, or the text it reports having drawn; fonts come from the package itself or from Debian
packages, never from the network.

Left out: Procaptcha 1.1.0 (its per-character white patches erase neighbouring characters, so
labels are not what the image shows) and x-captcha 0.4 (its wheel lacks its default font); not
yet tried: util-captcha, pyimgcaptcha, CaptchaGenerator.

None of these generators' code is copied into the project's renderer or training data: they are
test sets only. This module imports nothing from the project and only the standard library at
import time, so it runs inside each generator's venv.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")  # Debian: fonts-dejavu-core
LIBERATION = Path("/usr/share/fonts/truetype/liberation")  # Debian: fonts-liberation
FONT_PACKAGES = {DEJAVU: "fonts-dejavu-core", LIBERATION: "fonts-liberation"}
ALNUM = string.digits + string.ascii_letters

Draw = Callable[[random.Random], tuple[str, Any]]


@dataclass(frozen=True)
class Style:
    """One held-out test set: a generator, its options, and how one image is drawn."""

    name: str
    package: str  # the PyPI distribution
    venv: str  # .venv-unseen-<venv>/
    requirements: tuple[str, ...]
    options: dict[str, Any]  # as recorded in the manifest
    alphabet: str
    lengths: tuple[int, int]
    fonts: tuple[str, ...]  # font files used, or where the package keeps its own
    make: Callable[[], Draw]  # called once per set, inside the generator's venv
    note: str = ""
    system_packages: tuple[str, ...] = field(default=())


def _text(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _font(folder: Path, name: str) -> str:
    path = folder / name
    if not path.exists():
        raise FileNotFoundError(f"font {path} is missing: install the Debian package {FONT_PACKAGES[folder]}")
    return str(path)


# -- claptcha 0.3.3 ----------------------------------------------------------------------------


def _claptcha(noise: float) -> Callable[[], Draw]:
    def make() -> Draw:
        from claptcha import Claptcha

        font = _font(DEJAVU, "DejaVuSans.ttf")

        def draw(rng: random.Random):
            text = _text(rng, string.ascii_uppercase + string.digits, 5)
            label, image = Claptcha(text, font, noise=noise).image  # default size 200x80, margin 20x20
            return label, image

        return draw

    return make


# -- wheezy.captcha 3.2.2 ----------------------------------------------------------------------


def _wheezy() -> Draw:
    from wheezy.captcha.image import (background, captcha, curve, noise, offset, rotate, smooth, text,
                                      warp)

    fonts = [_font(LIBERATION, "LiberationMono-Bold.ttf"), _font(DEJAVU, "DejaVuSans-Bold.ttf")]
    # the package's README example, with Debian fonts standing in for its Courier New and Liberation Mono
    render = captcha(drawings=[
        background(),
        text(fonts=fonts, drawings=[warp(), rotate(), offset()]),
        curve(),
        noise(),
        smooth(),
    ])

    def draw(rng: random.Random):
        label = "".join(rng.sample(string.ascii_uppercase + string.digits, 4))
        return label, render(list(label))

    return draw


# -- multicolorcaptcha 1.2.0 -------------------------------------------------------------------


def _multicolor(size_num: int, level: int, chars_mode: str, multicolor: bool) -> Callable[[], Draw]:
    def make() -> Draw:
        from multicolorcaptcha import CaptchaGenerator

        generator = CaptchaGenerator(size_num)

        def draw(rng: random.Random):
            captcha = generator.gen_captcha_image(difficult_level=level, chars_mode=chars_mode, multicolor=multicolor)
            return captcha.characters, captcha.image.convert("RGB")

        return draw

    return make


# -- django-simple-captcha 0.7.0 ---------------------------------------------------------------


def _django(scale: int) -> Callable[[], Draw]:
    def make() -> Draw:
        import io
        from types import SimpleNamespace

        import django
        from django.conf import settings

        if not settings.configured:
            settings.configure(INSTALLED_APPS=["captcha"], USE_TZ=True)
            django.setup()
        from PIL import Image
        from captcha.views import _captcha_image  # the function behind its image view: challenge -> PNG

        def draw(rng: random.Random):
            label = _text(rng, string.ascii_uppercase, 4)  # as its default random_char_challenge draws
            response = _captcha_image(SimpleNamespace(challenge=label), scale)
            return label, Image.open(io.BytesIO(response.content)).convert("RGB")

        return draw

    return make


# -- easy-captcha 1.3.3 ------------------------------------------------------------------------


def _easy(generator_name: str) -> Callable[[], Draw]:
    def make() -> Draw:
        import captcha.generator as easy

        generator = getattr(easy, generator_name)()

        def draw(rng: random.Random):
            label = _text(rng, ALNUM, 4)
            return label, generator.make_captcha(label).convert("RGB")  # default 100x50

        return draw

    return make


# -- flask-simple-captcha 5.5.5 ----------------------------------------------------------------


def _flask(config: dict[str, Any]) -> Callable[[], Draw]:
    def make() -> Draw:
        import base64
        import io

        from PIL import Image
        from flask_simple_captcha import CAPTCHA

        generator = CAPTCHA({"SECRET_CAPTCHA_KEY": "x" * 64, **config})

        def draw(rng: random.Random):
            made = generator.create()
            data = base64.b64decode(made["img"].split(",", 1)[-1])
            return made["text"], Image.open(io.BytesIO(data)).convert("RGB")

        return draw

    return make


# -- bettercaptcha 1.0.2 -----------------------------------------------------------------------


def _better(**settings: Any) -> Callable[[], Draw]:
    def make() -> Draw:
        from bettercaptcha import CaptchaImage

        font = _font(DEJAVU, "DejaVuSans.ttf")  # its default arial.ttf is not on Linux

        def draw(rng: random.Random):
            label = "".join(rng.sample(ALNUM, 12))  # as its rand_chars draws: 12 distinct characters
            return label, CaptchaImage(font=font, text=label, **settings).create()

        return draw

    return make


# -- CaptchaGen 0.1.0 --------------------------------------------------------------------------


def _captchagen(**config: Any) -> Callable[[], Draw]:
    def make() -> Draw:
        from CaptchaGen import CaptchaConfig, CaptchaGenerator

        _font(LIBERATION, "LiberationSans-Regular.ttf")
        generator = CaptchaGenerator(str(LIBERATION), CaptchaConfig(**config))

        def draw(rng: random.Random):
            image, label = generator.generate()
            return label, image.convert("RGB")

        return draw

    return make


# -- randcaptcha 0.2 ---------------------------------------------------------------------------


def _randcaptcha() -> Draw:
    import tempfile

    from PIL import Image
    from randcaptcha import CreateImageCaptcha

    font = _font(DEJAVU, "DejaVuSerif.ttf")
    folder = tempfile.mkdtemp(prefix="randcaptcha-")

    def draw(rng: random.Random):
        path = str(Path(folder) / "image.png")
        label, written = CreateImageCaptcha([font], 28, filename_out=path)
        with Image.open(written) as image:
            return label, image.convert("RGB")

    return draw


PILLOW = "pillow==13.0.0"
PILLOW_9 = "pillow==9.5.0"  # for packages that call font.getsize, removed in Pillow 10
BETTER = ("bettercaptcha==1.0.2", PILLOW_9, "numpy==2.4.6")  # numpy: its distortion option

STYLES: dict[str, Style] = {s.name: s for s in [
    Style("claptcha", "claptcha", "claptcha", ("claptcha==0.3.3", PILLOW_9), {"noise": 0.0, "size": [200, 80]},
          string.ascii_uppercase + string.digits, (5, 5), ("dejavu/DejaVuSans.ttf",), _claptcha(0.0),
          system_packages=("fonts-dejavu-core",)),
    Style("claptcha-noise", "claptcha", "claptcha", ("claptcha==0.3.3", PILLOW_9), {"noise": 0.3, "size": [200, 80]},
          string.ascii_uppercase + string.digits, (5, 5), ("dejavu/DejaVuSans.ttf",), _claptcha(0.3),
          system_packages=("fonts-dejavu-core",)),
    Style("wheezy", "wheezy.captcha", "wheezy", ("wheezy.captcha==3.2.2", PILLOW),
          {"drawings": "README example: background, text(warp, rotate, offset), curve, noise, smooth", "size": [200, 75]},
          string.ascii_uppercase + string.digits, (4, 4),
          ("liberation/LiberationMono-Bold.ttf", "dejavu/DejaVuSans-Bold.ttf"), _wheezy,
          system_packages=("fonts-liberation", "fonts-dejavu-core")),
    Style("multicolor", "multicolorcaptcha", "multicolor", ("multicolorcaptcha==1.2.0", PILLOW),
          {"captcha_size_num": 2, "difficult_level": 2, "chars_mode": "nums", "multicolor": False},
          string.digits, (4, 4), ("the package's own fonts/",), _multicolor(2, 2, "nums", False)),
    Style("multicolor-ascii", "multicolorcaptcha", "multicolor", ("multicolorcaptcha==1.2.0", PILLOW),
          {"captcha_size_num": 0, "difficult_level": 1, "chars_mode": "ascii", "multicolor": True},
          string.ascii_uppercase + string.digits, (4, 4), ("the package's own fonts/",), _multicolor(0, 1, "ascii", True)),
    Style("django-simple", "django-simple-captcha", "django", ("django-simple-captcha==0.7.0", "django==5.2.19", PILLOW),
          {"settings": "defaults (Vera.ttf 22 px, rotation -35..35, noise arcs and dots, smooth)", "scale": 1},
          string.ascii_uppercase, (4, 4), ("the package's own fonts/Vera.ttf",), _django(1)),
    Style("django-simple-2x", "django-simple-captcha", "django", ("django-simple-captcha==0.7.0", "django==5.2.19", PILLOW),
          {"settings": "defaults", "scale": 2, "why": "its 2x image for high-density screens"},
          string.ascii_uppercase, (4, 4), ("the package's own fonts/Vera.ttf",), _django(2)),
    Style("easy-default", "easy-captcha", "easy", ("easy-captcha==1.3.3", PILLOW_9), {"generator": "DefaultGenerator"},
          ALNUM, (4, 4), ("the package's own fonts/TruenoBdOlIt.otf",), _easy("DefaultGenerator")),
    Style("easy-simple", "easy-captcha", "easy", ("easy-captcha==1.3.3", PILLOW_9), {"generator": "SimpleGenerator"},
          ALNUM, (4, 4), ("the package's own fonts/AuxinMedium.otf",), _easy("SimpleGenerator")),
    Style("flask-simple", "flask-simple-captcha", "flask", ("flask-simple-captcha==5.5.5", PILLOW),
          {"config": "defaults: 6 upper-case letters, no look-alikes, white on black, JPEG"},
          "ABCDEFGHJKLMNPQRSTUVWXYZ", (6, 6), ("the package's own fonts/ (Roboto Mono)",), _flask({})),
    Style("flask-simple-colour", "flask-simple-captcha", "flask", ("flask-simple-captcha==5.5.5", PILLOW),
          {"config": {"CAPTCHA_DIGITS": True, "BACKGROUND_COLOR": [230, 230, 210], "TEXT_COLOR": [40, 60, 160],
                      "CAPTCHA_IMG_FORMAT": "PNG"}},
          "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", (6, 6), ("the package's own fonts/ (Roboto Mono)",),
          _flask({"CAPTCHA_DIGITS": True, "BACKGROUND_COLOR": (230, 230, 210), "TEXT_COLOR": (40, 60, 160),
                  "CAPTCHA_IMG_FORMAT": "PNG"})),
    Style("bettercaptcha", "bettercaptcha", "better", BETTER,
          {"font_size": 24, "settings": "none: plain black text on white"},
          ALNUM, (12, 12), ("dejavu/DejaVuSans.ttf",), _better(), system_packages=("fonts-dejavu-core",)),
    Style("bettercaptcha-noisy", "bettercaptcha", "better", BETTER,
          {"font_size": 24, "color": [30, 60, 200], "background": "color", "distortion": True, "lines": 4, "points": 20},
          ALNUM, (12, 12), ("dejavu/DejaVuSans.ttf",),
          _better(color=(30, 60, 200), background="color", distortion=True, lines=4, points=20),
          system_packages=("fonts-dejavu-core",)),
    Style("captchagen", "CaptchaGen", "captchagen", ("CaptchaGen==0.1.0", PILLOW),
          {"config": "defaults: 200x80, 4-6 alphanumerics"}, ALNUM, (4, 6), ("liberation/*.ttf",),
          _captchagen(), system_packages=("fonts-liberation",)),
    Style("captchagen-noisy", "CaptchaGen", "captchagen", ("CaptchaGen==0.1.0", PILLOW),
          {"config": {"rotate": True, "noise": True, "random_color": True}}, ALNUM, (4, 6), ("liberation/*.ttf",),
          _captchagen(rotate=True, noise=True, random_color=True), system_packages=("fonts-liberation",)),
    Style("randcaptcha", "randcaptcha", "randcaptcha", ("randcaptcha==0.2", PILLOW), {"fontsize": 28, "length": 5},
          string.ascii_uppercase + string.digits, (5, 5), ("dejavu/DejaVuSerif.ttf",), _randcaptcha,
          system_packages=("fonts-dejavu-core",)),
]}
