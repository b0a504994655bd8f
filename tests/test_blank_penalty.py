"""The route's blank penalty: a character the CTC blank narrowly outweighs is read, not dropped."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

from scrapy_captcha import Solver
from scrapy_captcha.routing import read_route
from scrapy_captcha.weights import BUNDLED_DIR
from trainer.render import TextSpec, build_drawer
from trainer.render.base import GENERALIST_ALPHABET

pytestmark = pytest.mark.usefixtures("one_thread")


class ScriptedBackend:
    """The generalist's settings, with logits written by the test: ``text`` a frame a character, a blank frame
    after each, and at ``weak`` a character whose frame the blank outweighs by ``margin`` (in logits)."""

    def __init__(self, text: str, weak: int, margin: float):
        generalist = Solver.from_path("generalist", backend="onnx").backend
        self.config, self.path = generalist.config, generalist.path
        index = {char: position + 1 for position, char in enumerate(self.config.alphabet)}
        frames = np.full((2 * len(text), len(self.config.alphabet) + 1), -10.0, dtype=np.float32)
        for position, char in enumerate(text):
            frames[2 * position, index[char]] = 0.0
            frames[2 * position + 1, 0] = 0.0
        frames[2 * weak, 0] = margin  # the blank wins this frame, by ``margin``
        self.logits = frames[None]

    def run(self, batch):
        return np.repeat(self.logits, len(batch), axis=0)


def _image() -> Image.Image:
    return Image.new("RGB", (96, 48), "white")


def test_a_character_the_blank_narrowly_outweighs_is_read():
    backend = ScriptedBackend("AlIb", weak=2, margin=0.5)
    assert Solver(backend).solve(_image()).text == "Alb"
    assert Solver(backend, blank_penalty=0.75).solve(_image()).text == "AlIb"
    assert Solver(ScriptedBackend("AlIb", weak=2, margin=3.0), blank_penalty=0.75).solve(_image()).text == "Alb"


def test_the_penalty_can_be_changed_and_is_the_same_in_a_batch():
    backend = ScriptedBackend("x1y", weak=1, margin=0.4)
    solver = Solver(backend)
    solver.blank_penalty = 0.75
    assert [p.text for p in solver.solve_batch([_image(), _image()])] == ["x1y", "x1y"]
    solver.blank_penalty = 0
    assert solver.solve(_image()).text == "xy"


def test_the_bundled_route_gives_the_generalist_its_penalty():
    route = Solver.from_path("auto", backend="onnx")
    assert route.route.otherwise_blank_penalty == 0.75
    assert route.expert("otherwise").blank_penalty == 0.75 and route.expert("first").blank_penalty == 0
    assert Solver.from_path("generalist", backend="onnx").blank_penalty == 0  # one model alone: no penalty


def test_the_penalty_reads_our_narrow_rich_captchas_as_well_or_better():
    drawer, rng = build_drawer("plain", TextSpec(GENERALIST_ALPHABET[:62], (4, 6), narrow=1.0), difficulty=0.5), random.Random(7)
    drawn = [drawer.draw(rng) for _ in range(80)]
    route = Solver.from_path("auto", backend="onnx")
    reader = route.expert("otherwise")

    def right(penalty: float) -> int:
        reader.blank_penalty = penalty
        return sum(route.solve(image).text.lower() == label.lower() for image, label in drawn)

    assert right(0.75) >= right(0.0) - 2  # a sanity bound; the measured gain is benchmarks/blank_penalty.json's


def test_a_route_file_without_a_blank_penalty_has_none(tmp_path):
    data = json.loads((BUNDLED_DIR / "auto.json").read_text())
    data.pop("otherwise_blank_penalty", None)
    path = tmp_path / "route.json"
    path.write_text(json.dumps(data))
    assert read_route(path).otherwise_blank_penalty == 0
