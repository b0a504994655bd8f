"""Routes: a style gate picks which of two models reads an image.

No single small model reads both the ``captcha`` library's styles at the seed task's floors and
styles it never saw; two do. A route file (JSON, ``CAPTCHA_WEIGHTS = "auto"`` is the bundled
one, ``scrapy_captcha/weights/auto.json``) names three weights files beside it:

- ``gate``: a ``style-gate`` model, the probability that an image is in ``first``'s style;
- ``first``: the model for that style (the bundled route: the default model);
- ``otherwise``: the model for everything else (the bundled route: the generalist).

An image goes to ``first`` when the gate says at least ``min_gate``; when ``first`` is then less
sure of its answer than ``min_confidence``, ``otherwise`` reads it too and its answer is taken.
Most images thus cost the gate (a fraction of a millisecond) and one model. When ``otherwise`` is
less sure of its answer than ``otherwise_views_below`` (default 0: never), it also reads five
other views of the image and the reading they agree on is taken (:mod:`scrapy_captcha.views`).
``otherwise_one_case`` (default 0: off) is the share at which a letter of ``otherwise``'s reading takes
the case of the reading's other letters (:mod:`scrapy_captcha.case_prior`); ``otherwise_blank_penalty``
(default 0: off; at most 10) is taken from ``otherwise``'s CTC blank logit before its readings are
decoded (the Solver's ``blank_penalty``).
Each name is given without a suffix: the onnx backend reads ``NAME.onnx``, torch ``NAME.pt``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .codec import Codec, Prediction
from .image import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, ImageInput, load_image, pad_batch, to_array
from .weights import WeightsError, check_file

if TYPE_CHECKING:
    from .answers import AnswerRules
    from .backends import Backend
    from .solver import Solver

logger = logging.getLogger(__name__)

ROUTE_FORMAT = "scrapy-captcha-route"
ROUTE_VERSION = 1
ROUTE_SUFFIX = ".json"
EXPERTS = ("first", "otherwise")
#: A larger penalty than this turns every frame into a character: a typo, not a setting.
MAX_BLANK_PENALTY = 10


def is_route(path: str | Path) -> bool:
    """Whether ``path`` names a route file rather than one model's weights."""
    return Path(path).suffix.lower() == ROUTE_SUFFIX


@dataclass(frozen=True)
class Route:
    """A parsed route file: the gate's and the two models' files (no suffix), and the thresholds."""

    path: Path
    gate: Path
    first: Path
    otherwise: Path
    min_gate: float = 0.5
    min_confidence: float = 0.5
    otherwise_views_below: float = 0.0  # the ``otherwise`` model reads more views under this confidence
    otherwise_one_case: float = 0.0  # the ``otherwise`` model's one-case share (Solver's ``one_case``)
    otherwise_blank_penalty: float = 0.0  # taken from the ``otherwise`` model's blank logit (Solver's ``blank_penalty``)

    def member(self, name: str, backend: str) -> Path:
        """The file of ``name`` ("gate", "first", "otherwise") that ``backend`` ("onnx", "torch") reads."""
        return getattr(self, name).with_suffix(".onnx" if backend == "onnx" else ".pt")


def read_route(path: str | Path) -> Route:
    """Read and check a route file (:class:`~scrapy_captcha.weights.WeightsError` naming what is wrong)."""
    path = Path(path)
    check_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable route file (JSON): {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != ROUTE_FORMAT:
        raise WeightsError(f"{path}: not a scrapy-captcha route file (no \"format\": \"{ROUTE_FORMAT}\")")
    if data.get("version") != ROUTE_VERSION:
        raise WeightsError(f"{path}: route format version {data.get('version')!r} is not supported (expected {ROUTE_VERSION})")
    members = {}
    for name in ("gate", *EXPERTS):
        value = data.get(name)
        if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
            raise WeightsError(f"{path}: {name!r} must name a weights file beside the route, without a suffix, got {value!r}")
        members[name] = path.parent / value
    thresholds = {}
    for name, default, highest in (("min_gate", 0.5, 1), ("min_confidence", 0.5, 1), ("otherwise_views_below", 0.0, 1),
                                   ("otherwise_one_case", 0.0, 1), ("otherwise_blank_penalty", 0.0, MAX_BLANK_PENALTY)):
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= highest:
            raise WeightsError(f"{path}: {name} must be a number from 0 to {highest}, got {value!r}")
        thresholds[name] = float(value)
    return Route(path, members["gate"], members["first"], members["otherwise"], **thresholds)


class RoutedRules:
    """Answer rules for each model of a route (the same settings, each model's own classes).

    ``unable`` names the models that can give no allowed answer under these settings (a
    ``CAPTCHA_ANSWER_LENGTH`` longer than the model reads, a ``CAPTCHA_ALPHABET`` it has none of):
    the route then reads every image with the other model.
    """

    def __init__(self, rules: dict[str, AnswerRules | None], alphabets: dict[str, str], unable: frozenset[str] = frozenset()):
        self.rules = rules
        self.unable = unable
        answers = [rules[name].codec.alphabet if rules[name] else alphabets[name] for name in EXPERTS if name not in unable]
        self.codec = Codec("".join(dict.fromkeys("".join(answers))))  # what answers can hold, either able model


class RoutedSolver:
    """Reads images with a route: the gate picks the model. Safe to call from several threads.

    It answers like :class:`~scrapy_captcha.solver.Solver` (``solve``, ``solve_batch``), each
    prediction naming the model that read it (``Prediction.model``, its file's name); its ``config``
    is the ``otherwise`` model's, the broader one. ``routed`` counts the images each model answered.
    """

    def __init__(self, route: Route, gate: Backend, first: Solver, otherwise: Solver, *,
                 max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
                 max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS):
        if gate.config.arch != "style-gate":
            raise WeightsError(f"{route.path}: its gate {gate.path} is a {gate.config.arch!r} model, not a 'style-gate'")
        for name, solver in (("first", first), ("otherwise", otherwise)):
            if solver.config.arch == "style-gate":
                raise WeightsError(f"{route.path}: its {name!r} model {solver.backend.path} is a style gate, not a reader")
        self.route, self.gate = route, gate
        self.experts = {"first": first, "otherwise": otherwise}
        self.config = otherwise.config
        self.backend = otherwise.backend
        self.caps = {"max_bytes": max_image_bytes, "max_pixels": max_image_pixels}
        self.routed = {"first": 0, "otherwise": 0}

    def expert(self, name: str) -> Solver:
        """The solver of ``name``: "first" or "otherwise"."""
        return self.experts[name]

    @property
    def configs(self) -> list:
        """The settings of the gate and of each model, in that order."""
        return [self.gate.config, *(solver.config for solver in self.experts.values())]

    @classmethod
    def from_route(cls, path: str | Path, device: str = "cpu", backend: str = "auto", threads: int | None = None,
                   **options: Any) -> "RoutedSolver":
        """Load the route file at ``path`` and its three models with ``backend``."""
        from .backends import installed, load_backend
        from .solver import Solver

        route = read_route(path)
        if backend == "auto":
            gpu = (device or "cpu").strip().lower() != "cpu"
            backend = "onnx" if not gpu and installed("onnx") and route.member("gate", "onnx").exists() else "torch"
        caps = {key: options[key] for key in ("max_image_bytes", "max_image_pixels") if key in options}
        load = {name: load_backend(route.member(name, backend), backend, device, threads) for name in ("gate", *EXPERTS)}
        own = {"first": {}, "otherwise": {"views_below": route.otherwise_views_below, "one_case": route.otherwise_one_case,
                                          "blank_penalty": route.otherwise_blank_penalty}}
        experts = {name: Solver(load[name], device, **own[name], **options) for name in EXPERTS}
        return cls(route, load["gate"], experts["first"], experts["otherwise"], **caps)

    def answer_rules(self, answer_case: str, alphabet: str | None,
                     lengths: tuple[int, int] | None = None, warn: bool = True) -> RoutedRules | None:
        """:func:`~scrapy_captcha.answers.answer_rules` for each model; ``None`` when nothing changes.

        A model that can give no allowed answer under the settings is left out (:class:`RoutedRules`;
        logged as the settings' fault unless ``warn`` is False); :class:`~scrapy_captcha.errors.CaptchaSettingsError`
        when neither can.
        """
        from .answers import answer_rules
        from .errors import CaptchaSettingsError

        rules: dict[str, AnswerRules | None] = {}
        refused: dict[str, str] = {}
        for name, solver in self.experts.items():
            try:
                rules[name] = answer_rules(solver.config, answer_case, alphabet, lengths)
            except CaptchaSettingsError as exc:
                rules[name], refused[name] = None, str(exc)
        if len(refused) == len(EXPERTS):
            raise CaptchaSettingsError(f"neither model of the route {self.route.path} can answer under these settings: "
                                       + "; ".join(f"{self._member(name)}: {why}" for name, why in refused.items()))
        for name, why in refused.items() if warn else ():
            other = "otherwise" if name == "first" else "first"
            logger.warning("%s; the route %s reads every captcha with %s instead of %s",
                           why, self.route.path, self._member(other), self._member(name))
        if not refused and all(rule is None for rule in rules.values()):
            return None
        return RoutedRules(rules, self._alphabets(), frozenset(refused))

    def one_model_rules(self, rules: RoutedRules | None, name: str) -> RoutedRules:
        """``rules`` that send every image to the ``name`` model ("first" or "otherwise"), skipping the gate."""
        per_model = rules.rules if rules is not None else {expert: None for expert in EXPERTS}
        return RoutedRules(dict(per_model), self._alphabets(), frozenset(EXPERTS) - {name})

    def _alphabets(self) -> dict[str, str]:
        return {name: solver.config.alphabet for name, solver in self.experts.items()}

    def _member(self, name: str) -> str:
        return f"its {name!r} model ({getattr(self.route, name).name})"

    def style_scores(self, images: Sequence[ImageInput]) -> list[float]:
        """The gate's probability that each image is in the ``first`` model's style."""
        arrays = [to_array(image, self.gate.config, **self.caps) for image in images]
        scores: list[float] = [0.0] * len(arrays)
        groups: dict[int, list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(array.shape[-1], []).append(index)
        for indices in groups.values():
            logits = np.asarray(self.gate.run(pad_batch([arrays[i] for i in indices]))).reshape(-1)
            for index, logit in zip(indices, logits.tolist()):
                scores[index] = _sigmoid(logit)
        return scores

    def solve(self, image: ImageInput, rules: RoutedRules | None = None) -> Prediction:
        """Read one image (the middleware's call: no batch bookkeeping)."""
        image = load_image(image, **self.caps)
        array = to_array(image, self.gate.config)
        only = _only_able(rules)
        if only is not None:  # the other model can give no allowed answer: no gate, no second opinion
            self.routed[only] += 1
            return self._read(only, image, array, rules)
        logit = float(np.asarray(self.gate.run(array[None])).reshape(-1)[0])
        if _sigmoid(logit) >= self.route.min_gate:
            prediction = self._read("first", image, array, rules)
            if prediction.confidence >= self.route.min_confidence:
                self.routed["first"] += 1
                return prediction
        self.routed["otherwise"] += 1
        return self._read("otherwise", image, array, rules)

    def _read(self, name: str, image: Any, gate_array: np.ndarray, rules: RoutedRules | None) -> Prediction:
        """``name``'s reading of one image, from the gate's array when the model reads the same one."""
        solver, member, model_rules = self.experts[name], getattr(self.route, name).name, self._rules(rules, name)
        if solver.config.input_key == self.gate.config.input_key:
            return replace(solver.reread(image, solver.read_array(gate_array, model_rules), model_rules), model=member)
        return replace(solver.solve(image, model_rules), model=member)

    def solve_batch(self, images: Sequence[ImageInput], rules: RoutedRules | None = None) -> list[Prediction]:
        """Read several images, each with the model its style calls for."""
        images = [load_image(image, **self.caps) for image in images]  # decoded once, for the gate and the models
        only = _only_able(rules)
        if only is not None:
            self.routed[only] += len(images)
            name = getattr(self.route, only).name
            return [replace(p, model=name) for p in self.experts[only].solve_batch(images, self._rules(rules, only))]
        chosen = [score >= self.route.min_gate for score in self.style_scores(images)]
        answers: list[Prediction | None] = [None] * len(images)
        firsts = [i for i, first in enumerate(chosen) if first]
        if firsts:
            read = self.experts["first"].solve_batch([images[i] for i in firsts], self._rules(rules, "first"))
            for index, prediction in zip(firsts, read):
                if prediction.confidence >= self.route.min_confidence:
                    answers[index] = replace(prediction, model=self.route.first.name)
        others = [i for i, answer in enumerate(answers) if answer is None]
        if others:
            read = self.experts["otherwise"].solve_batch([images[i] for i in others], self._rules(rules, "otherwise"))
            for index, prediction in zip(others, read):
                answers[index] = replace(prediction, model=self.route.otherwise.name)
        self.routed["first"] += len(images) - len(others)
        self.routed["otherwise"] += len(others)
        return answers  # type: ignore[return-value]

    def pick(self, images: Sequence[ImageInput]) -> str:
        """The model ("first" or "otherwise") whose style most of ``images`` are in."""
        scores = self.style_scores([load_image(image, **self.caps) for image in images])
        return "first" if sum(score >= self.route.min_gate for score in scores) * 2 > len(scores) else "otherwise"

    @staticmethod
    def _rules(rules: RoutedRules | None, name: str) -> AnswerRules | None:
        return rules.rules[name] if rules is not None else None


def _only_able(rules: RoutedRules | None) -> str | None:
    """The one model that can answer under ``rules`` when the other cannot; None when both can."""
    if rules is None or not rules.unable:
        return None
    return next(name for name in EXPERTS if name not in rules.unable)


def _sigmoid(logit: float) -> float:
    return 1 / (1 + math.exp(-min(max(logit, -60.0), 60.0)))
