"""The captcha renderer: families of drawings behind one interface, a registry, and a weighted mix.

- :class:`~trainer.render.base.Renderer`: ``text(rng, spec)`` picks a text, ``render(text, rng,
  difficulty)`` draws it. Families: ``0.7`` and ``0.5`` (the ``captcha`` library's styles,
  :mod:`.captcha_lib`), ``plain``, ``styled``, ``scattered``, ``tangled`` and ``pastel`` (our own,
  :mod:`.styled`), ``arithmetic``
  (:mod:`.arithmetic`), ``junk`` (images with no text, labelled empty: :mod:`.junk`), and ``plugin`` (a
  user's ``module:function``, text -> PIL image).
- :func:`parse_mix`: ``"styled"``, ``"mixed"`` (both library styles, as before), ``"generalist"`` (the
  bundled generalist's recipe) or weights such as ``"styled:3,plain:1,0.7:1"``.
- :class:`Drawer`: draws ``(image, label)`` pairs from a mix at a difficulty; the curriculum moves
  the difficulty as training goes.
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from PIL import Image

from scrapy_captcha.codec import SEED_ALPHABET

from .base import ARITHMETIC_SYMBOLS, GENERALIST_ALPHABET, Renderer, TextSpec, label_of, random_text
from .fonts import FontSet, MissingFontsError

__all__ = ["FAMILIES", "GENERALIST_ALPHABET", "MIXES", "Drawer", "MissingFontsError", "PluginError", "Renderer",
           "TextSpec", "build_drawer", "label_of", "load_plugin", "parse_mix", "random_text"]

#: Every family by name.
FAMILIES = ("0.7", "0.5", "plain", "styled", "scattered", "tangled", "pastel", "arithmetic", "junk", "plugin")
#: Named mixes: family -> weight. "mixed" keeps its old meaning (both library styles).
MIXES: dict[str, dict[str, float]] = {
    "mixed": {"0.7": 1, "0.5": 1},
    "generalist": {"0.7": 0.16, "0.5": 0.10, "plain": 0.14, "styled": 0.50, "arithmetic": 0.10},
    # the generalist's second stage: the learning rate cools down on a mix that leans on the seed's styles
    "generalist-final": {"0.7": 0.35, "0.5": 0.15, "plain": 0.10, "styled": 0.32, "arithmetic": 0.08},
    # the third stage: a second cool-down leaning harder on the seed's styles, 0.5.0 above all
    "generalist-seed": {"0.7": 0.35, "0.5": 0.30, "plain": 0.07, "styled": 0.22, "arithmetic": 0.06},
    # the fourth: with the route reading the library's styles by the default model, the generalist leans
    # on the broad families again, tumbling and scattered characters among them
    "generalist-wide": {"0.7": 0.12, "0.5": 0.08, "plain": 0.14, "styled": 0.36, "scattered": 0.20, "arithmetic": 0.10},
    # the same, a quarter of our own families' texts rich in narrow characters (I, l, 1, j...), which the
    # generalist drops where they stand side by side (NARROW_MIXES)
    "generalist-narrow": {"0.7": 0.12, "0.5": 0.08, "plain": 0.14, "styled": 0.36, "scattered": 0.20, "arithmetic": 0.10},
    # the fifth: the same with clutter in the text's own ink and weight (tangled) and characters of many
    # colours, some pale (pastel), taken from the other own families' shares
    "generalist-tangled": {"0.7": 0.12, "0.5": 0.08, "plain": 0.12, "styled": 0.26, "scattered": 0.16,
                           "tangled": 0.12, "pastel": 0.06, "arithmetic": 0.08},
}
#: The mixes whose library styles draw the seed task's texts (see :func:`family_text`).
GENERALIST_MIXES = ("generalist", "generalist-final", "generalist-seed", "generalist-wide", "generalist-narrow",
                    "generalist-tangled")
#: Mixes whose own families draw this share of their texts rich in narrow characters (:class:`TextSpec`'s ``narrow``).
NARROW_MIXES = {"generalist-narrow": 0.25}
#: In the generalist mixes the library styles draw the seed task's texts, so its floors keep being trained.
SEED_TEXT = TextSpec(SEED_ALPHABET, (4, 4))
SEED_FAMILIES = ("0.7", "0.5")


class PluginError(ValueError):
    """A ``--generator module:function`` that cannot be loaded or does not return an image."""


def parse_mix(text: str) -> dict[str, float]:
    """``"styled"``, a named mix (:data:`MIXES`) or ``"family:weight,..."`` -> {family: weight}."""
    if text in MIXES:
        return dict(MIXES[text])
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in FAMILIES:
            raise ValueError(f"unknown renderer family {name!r} in {text!r}; families: {', '.join(FAMILIES)}; mixes: {', '.join(MIXES)}")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight!r} for {name!r} in {text!r}") from None
        if mix[name] < 0:
            raise ValueError(f"weight of {name!r} is negative in {text!r}")
    if not any(mix.values()):
        raise ValueError(f"the mix {text!r} has no positive weight")
    return mix


def load_plugin(target: str) -> Callable[[str], Image.Image]:
    """Import ``module:function`` (a callable taking a text, returning a PIL image)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"--generator must be 'module:function', not {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"--generator {target!r}: cannot import {module_name!r}: {exc}") from exc
    function = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise PluginError(f"--generator {target!r}: {module_name!r} has no attribute {attribute!r}")
    if not callable(function):
        raise PluginError(f"--generator {target!r} is not callable")
    return function  # type: ignore[return-value]


class PluginRenderer:
    """A user's generator as a family: text -> PIL image, checked on every call."""

    name = "plugin"

    def __init__(self, target: str):
        self.target = target
        self.function = load_plugin(target)

    def text(self, rng: random.Random, spec: TextSpec) -> str:
        return random_text(rng, spec.alphabet, spec.lengths)

    def render(self, text: str, rng: random.Random, difficulty: float = 1.0) -> Image.Image:
        image = self.function(text)
        if not isinstance(image, Image.Image):
            raise PluginError(f"--generator {self.target!r} returned {type(image).__name__} for {text!r}, not a PIL image")
        return image


def make_family(name: str, fonts: Callable[[], FontSet], plugin: str | None = None, width: int = 160, height: int = 60,
                library_fonts: Sequence[str] = (), font_sizes: Sequence[int] = ()) -> Renderer:
    """One family by name; ``fonts`` is called only by the families that draw with system fonts."""
    if name in SEED_FAMILIES:
        from .captcha_lib import CaptchaLibRenderer

        return CaptchaLibRenderer(name, width, height, library_fonts, font_sizes)
    if name == "plugin":
        if not plugin:
            raise PluginError("the 'plugin' family needs --generator module:function")
        return PluginRenderer(plugin)
    if name == "junk":
        from .junk import JunkRenderer

        return JunkRenderer(width, height)
    if name == "arithmetic":
        from .arithmetic import ArithmeticRenderer

        return ArithmeticRenderer(fonts())
    from .styled import PastelRenderer, PlainRenderer, ScatteredRenderer, StyledRenderer, TangledRenderer

    renderers = {"plain": PlainRenderer, "styled": StyledRenderer, "scattered": ScatteredRenderer,
                 "tangled": TangledRenderer, "pastel": PastelRenderer}
    return renderers[name](fonts())


def family_text(mix: str, family: str, text: TextSpec) -> TextSpec:
    """The texts a family draws: in the generalist mix the library styles draw the seed task's texts
    and the others leave the arithmetic symbols to the ``arithmetic`` family."""
    if mix not in GENERALIST_MIXES:
        return text
    if family in SEED_FAMILIES:
        return SEED_TEXT
    plain = "".join(c for c in text.alphabet if c not in ARITHMETIC_SYMBOLS)
    return TextSpec(plain or text.alphabet, text.lengths, NARROW_MIXES.get(mix, 0.0))


@dataclass
class Drawer:
    """Draws ``(image, label)`` pairs: a family by weight, a text it suits, the image at ``difficulty``."""

    families: list[Renderer]
    weights: list[float]
    texts: list[TextSpec]
    difficulty: float = 1.0
    drawn: dict[str, int] = field(default_factory=dict)

    def draw(self, rng: random.Random) -> tuple[Image.Image, str]:
        index = rng.choices(range(len(self.families)), weights=self.weights)[0] if len(self.families) > 1 else 0
        family = self.families[index]
        text = family.text(rng, self.texts[index])
        image = family.render(text, rng, self.difficulty)
        self.drawn[family.name] = self.drawn.get(family.name, 0) + 1
        return image, label_of(text)

    def only(self, name: str) -> "Drawer":
        """This drawer with one of its families alone (its texts as in the mix)."""
        index = [family.name for family in self.families].index(name)
        return Drawer([self.families[index]], [1.0], [self.texts[index]], self.difficulty)

    def generate_image(self, text: str, rng: random.Random | None = None) -> Image.Image:
        """Draw a given text in a family picked by weight (for callers that choose the texts)."""
        rng = rng or random.Random()
        family = self.families[rng.choices(range(len(self.families)), weights=self.weights)[0]]
        return family.render(text, rng, self.difficulty)


def build_drawer(mix: str, text: TextSpec, font_dirs: Sequence[str] = (), plugin: str | None = None,
                 difficulty: float = 1.0, width: int = 160, height: int = 60, library_fonts: Sequence[str] = (),
                 font_sizes: Sequence[int] = ()) -> Drawer:
    """A :class:`Drawer` for ``mix`` (see :func:`parse_mix`); ``plugin`` is the ``module:function`` of the
    ``plugin`` family, which the mix must then name (``"plugin"`` alone, or ``"plugin:1,styled:3"``)."""
    weights = parse_mix(mix)
    if plugin and "plugin" not in weights:
        raise PluginError(f"--generator {plugin!r} is given but the mix {mix!r} leaves it out; add 'plugin' to --style (e.g. plugin:1,styled:1)")
    found: list[FontSet] = []

    def fonts() -> FontSet:
        if not found:
            found.append(FontSet.discover(tuple(font_dirs)))
        return found[0]

    families, shares, texts = [], [], []
    for name, weight in weights.items():
        if weight <= 0:
            continue
        families.append(make_family(name, fonts, plugin, width, height, library_fonts, font_sizes))
        shares.append(weight)
        texts.append(family_text(mix, name, text))
    return Drawer(families, shares, texts, difficulty)
