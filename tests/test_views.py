"""Other views of a captcha for an unsure model (scrapy_captcha.views): the solver reads them under
its ``views_below`` confidence and keeps the reading they agree on; the bundled route does so for
the generalist. Real bundled models; images drawn by our renderer."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scrapy_captcha import Solver
from scrapy_captcha.codec import Prediction
from scrapy_captcha.views import VIEWS, agreed_reading, other_views, whole_reading_vote
from trainer.render import TextSpec, build_drawer
from trainer.render.base import GENERALIST_ALPHABET

pytestmark = pytest.mark.usefixtures("one_thread")
LETTERS = GENERALIST_ALPHABET[:62]
VIEWS_ORDER = list(VIEWS)


@pytest.fixture(scope="module")
def unseen_like():
    """Our renderer's broadest families: styles no bundled model reads with certainty."""
    drawer, rng = build_drawer("styled:2,scattered:1", TextSpec(LETTERS, (4, 6))), random.Random(5)
    return [drawer.draw(rng) for _ in range(60)]


class CountingBackend:
    """A backend that counts its forward passes."""

    def __init__(self, backend):
        self.backend, self.config, self.path, self.calls = backend, backend.config, backend.path, 0

    def run(self, batch):
        self.calls += 1
        return self.backend.run(batch)


def test_other_views_keep_the_image_readable_in_any_mode():
    for image in (Image.new("RGB", (160, 60), "white"), Image.new("P", (70, 30)), Image.new("LA", (90, 40)),
                  Image.new("RGBA", (8, 8), (0, 0, 0, 0))):
        views = other_views(image)
        assert len(views) == len(VIEWS) == 5 and all(view.mode == "RGB" for view in views)
    margin, trimmed, wider, narrower, opened = other_views(Image.new("RGB", (200, 80), "white"))
    assert margin.size == (224, 104) and trimmed.size == (200, 68) and wider.size == (250, 80) and narrower.size == (160, 80)
    assert opened.size == (200, 80) and other_views(Image.new("RGB", (66, 29)))[-1].size == (132, 58)  # small: doubled


@pytest.mark.parametrize("ink, paper", [((30, 40, 160), (240, 235, 210)), ((255, 255, 255), (0, 0, 0))])
def test_the_opened_view_wipes_thin_lines_through_the_text_and_keeps_its_strokes(ink, paper):
    image = Image.new("RGB", (180, 60), paper)
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 10, 47, 50), fill=ink)  # a stroke 8 pixels wide
    draw.line((0, 30, 179, 34), fill=ink, width=1)  # a line through it
    draw.arc((100, 5, 170, 70), 180, 330, fill=ink, width=2)
    opened = other_views(image)[VIEWS_ORDER.index("opened")].convert("L")
    assert opened.getpixel((43, 30)) < 60 and opened.getpixel((42, 12)) < 60  # the stroke stays, dark on light
    line_pixels = [opened.getpixel((x, round(30 + 4 * x / 179))) for x in (5, 20, 60, 90, 150, 175)]
    assert min(line_pixels) > 200, line_pixels  # the line is gone
    assert np.asarray(opened.crop((95, 0, 180, 60))).min() > 200  # and so is the arc
    assert opened.getpixel((5, 5)) > 200


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (2, 3), (29, 66), (60, 180), (121, 400)])
def test_the_opening_is_pillows_max_then_min_filter_pixel_for_pixel(shape):
    from PIL import ImageFilter

    from scrapy_captcha.views import _square_filter

    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    expected = Image.fromarray(pixels).filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3))
    assert np.array_equal(_square_filter(_square_filter(pixels, np.maximum), np.minimum), np.asarray(expected))


def _reading(text: str, confidence: float) -> Prediction:
    return Prediction(text, confidence, (confidence,) * len(text))


def test_the_views_vote_with_their_confidences():
    # two readings agreeing outweigh one more confident reading, and the answer is the surer of the two
    assert agreed_reading([_reading("AB12", 0.6), _reading("A812", 0.3), _reading("XYZ", 0.4),
                           _reading("A812", 0.35)]) == _reading("A812", 0.35)
    assert agreed_reading([_reading("AB12", 0.6), _reading("A812", 0.3), _reading("AB12", 0.1),
                           _reading("A812", 0.35)]) == _reading("AB12", 0.6)
    assert agreed_reading([_reading("AB12", 0.7), _reading("AB1", 0.3)]) == _reading("AB12", 0.7)
    # equal support: the earliest text, the image as given first
    assert agreed_reading([_reading("ab", 0.4), _reading("cd", 0.4)]) == _reading("ab", 0.4)
    assert agreed_reading([_reading("", 0.1)]) == _reading("", 0.1)


def test_the_views_vote_character_by_character():
    # three views each misread another character: together they read the text none of them read
    readings = [Prediction("AB12", 0.3, (0.9, 0.8, 0.7, 0.6)), Prediction("A813", 0.25, (0.9, 0.5, 0.9, 0.9)),
                Prediction("XB13", 0.2, (0.4, 0.95, 0.8, 0.8)), _reading("AB1", 0.6)]
    voted = agreed_reading(readings)
    assert voted.text == "AB13" and voted.char_confidences == (0.9, 0.95, 0.9, 0.9)  # each the best of its character
    assert voted.confidence == pytest.approx(0.9 * 0.95 * 0.9 * 0.9)
    assert whole_reading_vote(readings) == _reading("AB1", 0.6)  # alone, the shorter reading wins
    # the length first: one sure reading of 3 characters outweighs three unsure ones of 4
    assert agreed_reading([_reading("AB12", 0.2), _reading("A812", 0.2), _reading("AB1", 0.7)]) == _reading("AB1", 0.7)
    # no combination that is an arithmetic symbol out of an expression: then whole readings vote
    expressions = [_reading("7+4=", 0.3), _reading("7A4=", 0.2), _reading("7+4A", 0.25), _reading("7B4A", 0.2)]
    assert agreed_reading(expressions) == _reading("7+4=", 0.3)
    assert agreed_reading([_reading("7+4A", 0.3), _reading("1+5=", 0.25), _reading("1B5A", 0.2)]).text == "7+4A"  # not 1+5A
    assert agreed_reading([_reading("7x4=", 0.3), _reading("9+4A", 0.2), _reading("9+4=", 0.25)]).text == "9+4="


def test_the_answer_is_the_reading_the_views_agree_on(unseen_like):
    plain = Solver.from_path("generalist", backend="onnx")
    always = Solver(plain.backend, views_below=1.01)
    for image, _ in unseen_like[:12]:
        readings = [plain.solve(view) for view in [image, *other_views(image)]]
        assert always.solve(image) == replace(agreed_reading(readings), other_views=True)
    images = [image for image, _ in unseen_like[:12]]
    assert always.solve_batch(images) == [always.solve(image) for image in images]


def test_a_confident_reading_costs_no_other_view(unseen_like):
    counting = CountingBackend(Solver.from_path("generalist", backend="onnx").backend)
    solver = Solver(counting, views_below=0.8)
    for image, _ in unseen_like:
        before = counting.calls
        prediction = solver.solve(image)
        first = Solver(counting.backend).solve(image)
        calls = counting.calls - before  # views that come out equally wide share a forward pass
        assert calls == 1 if first.confidence >= 0.8 else 2 <= calls <= 1 + len(VIEWS)
        assert prediction.other_views == (first.confidence < 0.8)
        assert first.confidence < 0.8 or prediction == first


def test_the_bundled_route_reads_more_views_for_the_generalist_only(unseen_like):
    route = Solver.from_path("auto")
    assert route.route.otherwise_views_below == 0.8
    assert route.expert("first").views_below == 0 and route.expert("otherwise").views_below == 0.8
    generalist = Solver.from_path("generalist", backend="onnx")

    def right(solver) -> int:
        return sum(p.text == label for p, (_, label) in zip(solver.solve_batch([i for i, _ in unseen_like]), unseen_like))

    # the route reads our broad styles with the generalist: the views may change an answer, never for much worse
    assert right(route) >= right(generalist) - 3
