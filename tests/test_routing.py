"""Routes (``CAPTCHA_WEIGHTS = "auto"``, the middleware's default): the style gate sends the captcha
library's styles to the default model and everything else to the generalist. The bundled gate and
models are the real ones; images are drawn afresh by our renderer (never another package's)."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import pytest
from scrapy.settings import Settings

from scrapy_captcha import Solver
from scrapy_captcha.backends import resolve
from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.errors import CaptchaSettingsError
from scrapy_captcha.routing import RoutedSolver, read_route
from scrapy_captcha.settings import read_settings
from scrapy_captcha.weights import BUNDLED_DIR, WeightsError, bundled_routes, weights_path
from trainer.adapt_data import Pool, start_weights
from trainer.render import TextSpec, build_drawer
from trainer.render.base import GENERALIST_ALPHABET

AUTO = BUNDLED_DIR / "auto.json"
pytestmark = pytest.mark.usefixtures("one_thread")


def png(image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def drawn(mix: str, count: int, seed: int, text: TextSpec) -> list[tuple[bytes, str]]:
    drawer, rng = build_drawer(mix, text), random.Random(seed)
    return [(png(image), label) for image, label in (drawer.draw(rng) for _ in range(count))]


@pytest.fixture(scope="module")
def seed_style():
    return drawn("0.7:1,0.5:1", 120, 1, TextSpec(SEED_ALPHABET, (4, 4)))


@pytest.fixture(scope="module")
def other_styles():
    return drawn("styled:2,plain:1", 120, 2, TextSpec(GENERALIST_ALPHABET[:62], (3, 9)))


@pytest.fixture(scope="module")
def route():
    return Solver.from_path("auto")


def test_auto_is_the_middlewares_default_and_a_bundled_name():
    assert bundled_routes() == ["auto"]
    assert weights_path("auto") == AUTO
    assert read_settings(Settings({})).weights == AUTO
    assert read_settings(Settings({"CAPTCHA_WEIGHTS": "auto"})).weights == AUTO
    assert read_settings(Settings({"CAPTCHA_WEIGHTS": "generalist"})).weights == BUNDLED_DIR / "generalist.pt"
    assert resolve("auto") == ("onnx", AUTO) and resolve("auto", "torch") == ("torch", AUTO)
    assert weights_path(None) == BUNDLED_DIR / "default.pt"  # the trainer's single model stays the default one


def test_the_bundled_route_names_the_two_bundled_models_and_a_small_gate():
    route = read_route(AUTO)
    assert route.member("first", "onnx") == BUNDLED_DIR / "default.onnx"
    assert route.member("otherwise", "torch") == BUNDLED_DIR / "generalist.pt"
    for backend in ("onnx", "torch"):
        gate = route.member("gate", backend)
        assert gate.is_file() and gate.stat().st_size < 1_000_000, gate
    total = sum(route.member(name, "onnx").stat().st_size for name in ("gate", "first", "otherwise"))
    assert total <= 10 * 1024 * 1024  # issue 8: at most 10 MB


def test_the_gate_sends_each_style_to_its_model(route, seed_style, other_styles):
    assert isinstance(route, RoutedSolver) and route.gate.name == "onnx"
    seed_scores = route.style_scores([image for image, _ in seed_style])
    other_scores = route.style_scores([image for image, _ in other_styles])
    assert sum(score >= 0.5 for score in seed_scores) >= 0.95 * len(seed_scores)
    assert sum(score < 0.5 for score in other_scores) >= 0.95 * len(other_scores)
    assert route.pick([image for image, _ in seed_style]) == "first"
    assert route.pick([image for image, _ in other_styles]) == "otherwise"


def test_each_answer_is_its_models_answer(route, seed_style, other_styles):
    images = [image for image, _ in seed_style[:40] + other_styles[:40]]
    before = dict(route.routed)
    answers = route.solve_batch(images)
    first = route.expert("first").solve_batch(images)
    otherwise = route.expert("otherwise").solve_batch(images)
    chosen = [score >= 0.5 for score in route.style_scores(images)]
    for answer, by_first, by_otherwise, to_first in zip(answers, first, otherwise, chosen):
        if to_first and by_first.confidence >= route.route.min_confidence:
            assert answer == replace(by_first, model="default")
        else:
            assert answer == replace(by_otherwise, model="generalist")
    assert sum(route.routed.values()) - sum(before.values()) == len(images)
    assert route.solve(images[0]) == answers[0]


def test_the_route_reads_both_kinds_better_than_either_model_alone(route, seed_style, other_styles):
    def right(solver, items):
        return sum(p.text == label for p, (_, label) in zip(solver.solve_batch([image for image, _ in items]), items))

    default, generalist = route.expert("first"), route.expert("otherwise")
    assert right(route, seed_style) >= right(generalist, seed_style) - 2
    assert right(route, other_styles) >= right(generalist, other_styles) - 2
    assert right(route, other_styles) > right(default, other_styles) + 20


def test_torch_and_onnx_routes_agree(route, seed_style, other_styles):
    by_torch = Solver.from_path("auto", backend="torch")
    assert by_torch.gate.name == "torch"
    images = [image for image, _ in seed_style[:20] + other_styles[:20]]
    assert [p.text for p in by_torch.solve_batch(images)] == [p.text for p in route.solve_batch(images)]


def test_answer_rules_apply_to_both_models(route, seed_style, other_styles):
    rules = route.answer_rules("lower", None)
    assert rules is not None and set(rules.rules) == {"first", "otherwise"}
    assert set("abcxyz0123") <= set(rules.codec.alphabet) and not set("ABC") & set(rules.codec.alphabet)
    for prediction in route.solve_batch([image for image, _ in seed_style[:10] + other_styles[:10]], rules):
        assert prediction.text == prediction.text.lower()
    as_is = route.answer_rules("as-is", None)  # the generalist keeps its symbols to expressions; the default has none
    assert as_is.rules["first"] is None and as_is.rules["otherwise"].plain is not None


def test_settings_only_one_model_can_answer_send_every_image_to_it(route, seed_style, caplog):
    generalist = read_route(AUTO).otherwise.name
    # 12 characters (the default model reads at most 8); 'l' and 'o' (not in the default model's alphabet)
    for rules in (route.answer_rules("as-is", None, (12, 12)), route.answer_rules("as-is", "lo")):
        assert rules.unable == {"first"} and rules.rules["first"] is None
        before = dict(route.routed)
        images = [image for image, _ in seed_style[:4]]  # the gate would send these to the default model
        readings = [route.solve(images[0], rules), *route.solve_batch(images[1:], rules)]
        assert {p.model for p in readings} == {generalist}
        assert route.routed["otherwise"] - before["otherwise"] == 4 and route.routed["first"] == before["first"]
    assert all(len(p.text) in (0, 12) for p in [route.solve(image, route.answer_rules("as-is", None, (12, 12)))
                                                  for image, _ in seed_style[:3]])
    assert "reads every captcha with its 'otherwise' model (generalist) instead of its 'first' model (default)" in caplog.text
    with pytest.raises(CaptchaSettingsError, match=r"neither model of the route .*auto\.json can answer.*"
                                                   r"\(default\): CAPTCHA_ANSWER_LENGTH 13-13.*\(generalist\): CAPTCHA_ANSWER_LENGTH 13-13"):
        route.answer_rules("as-is", None, (13, 13))


def route_file(folder: Path, **changes) -> Path:
    data = json.loads(AUTO.read_text())
    for name in ("first", "otherwise"):
        for suffix in (".pt", ".onnx"):
            shutil.copy(BUNDLED_DIR / f"{data[name]}{suffix}", folder / f"{data[name]}{suffix}")
    (folder / "gate").mkdir()
    for suffix in (".pt", ".onnx"):
        shutil.copy(BUNDLED_DIR / f"{data['gate']}{suffix}", folder / f"{data['gate']}{suffix}")
    data.update(changes)
    path = folder / "route.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def test_a_route_file_of_ones_own_works_anywhere(tmp_path, seed_style):
    path = route_file(tmp_path, min_gate=0.0, min_confidence=0.0)  # everything reaches the first model, and stays
    solver = Solver.from_path(path)
    assert isinstance(solver, RoutedSolver)
    images = [image for image, _ in seed_style[:10]]
    assert solver.solve_batch(images) == [replace(p, model="default") for p in solver.expert("first").solve_batch(images)]
    assert read_settings(Settings({"CAPTCHA_WEIGHTS": str(path), "CAPTCHA_BACKEND": "torch"})).weights == path


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "something-else"}, "not a scrapy-captcha route file"),
    ({"version": 7}, "route format version 7"),
    ({"gate": None}, "'gate' must name a weights file"),
    ({"first": "../default"}, "'first' must name a weights file"),
    ({"otherwise": "/etc/passwd"}, "'otherwise' must name a weights file"),
    ({"min_gate": 1.5}, "min_gate must be a number from 0 to 1"),
    ({"min_confidence": "high"}, "min_confidence must be a number from 0 to 1"),
    ({"otherwise_views_below": -0.1}, "otherwise_views_below must be a number from 0 to 1"),
    ({"otherwise_views_below": True}, "otherwise_views_below must be a number from 0 to 1"),
    ({"otherwise_blank_penalty": -0.5}, "otherwise_blank_penalty must be a number from 0 to 10"),
    ({"otherwise_blank_penalty": 10.5}, "otherwise_blank_penalty must be a number from 0 to 10"),
    ({"otherwise_blank_penalty": "high"}, "otherwise_blank_penalty must be a number from 0 to 10"),
])
def test_a_bad_route_file_is_refused_naming_the_file_and_the_fault(tmp_path, change, message):
    path = route_file(tmp_path, **change)
    with pytest.raises(WeightsError, match=message) as caught:
        read_route(path)
    assert str(path) in str(caught.value)


def test_a_route_whose_files_are_not_what_they_say_is_refused(tmp_path):
    path = route_file(tmp_path, gate="default")  # a reader where the gate should be
    with pytest.raises(WeightsError, match="not a 'style-gate'"):
        Solver.from_path(path)
    path.write_text("{not json")
    with pytest.raises(WeightsError, match="not a readable route file"):
        Solver.from_path(path)
    with pytest.raises(WeightsError, match="does not exist"):
        Solver.from_path(tmp_path / "missing.json")


def test_adapting_from_a_route_starts_from_the_model_of_the_recordings_style(tmp_path, seed_style, other_styles):
    for name, items in (("seed", seed_style[:30]), ("other", other_styles[:30])):
        folder = tmp_path / name
        folder.mkdir()
        paths = []
        for index, (image, _) in enumerate(items):
            (folder / f"{index}.png").write_bytes(image)
            paths.append((folder / f"{index}.png", frozenset()))
        expected = "default.pt" if name == "seed" else "generalist.pt"
        assert start_weights("auto", Pool([], paths)) == BUNDLED_DIR / expected
        assert start_weights(None, Pool([], paths)) == BUNDLED_DIR / "default.pt"  # no route: the named weights
    assert start_weights("generalist", Pool([], [])) == BUNDLED_DIR / "generalist.pt"


def test_the_gate_recipe_trains_a_gate_that_exports_and_routes(tmp_path):
    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.backends.torch_backend import TorchBackend
    from trainer import cli
    from trainer.gate import GATE_MODEL, draw_set

    assert cli.main(["gate", "--out", str(tmp_path / "gate"), "--images", "300", "--epochs", "1", "--workers", "1"]) == 0
    weights = tmp_path / "gate" / "weights.pt"
    assert cli.main(["export", str(weights), "--out", str(tmp_path / "gate.onnx")]) == 0
    by_torch, by_onnx = TorchBackend.from_path(weights), OnnxBackend(tmp_path / "gate.onnx")
    assert by_torch.config == by_onnx.config == GATE_MODEL
    summary = by_torch.summary
    assert summary["trained_with"] == "scrapy-captcha trainer gate" and summary["images"] == 300
    assert set(summary["validation"]) >= {"0.7", "0.5", "styled", "all"}
    items = draw_set(12, seed=5, workers=1)
    assert draw_set(12, seed=5, workers=1)[3][1].tobytes() == items[3][1].tobytes()  # the same set for a seed
    for family, array in items[:4]:  # any width: each image alone, as the runtime reads them
        assert abs(by_torch.run(array[None])[0] - by_onnx.run(array[None])[0]) < 1e-4, family


def test_the_bundled_gate_is_the_recipes_and_exported_faithfully():
    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.backends.torch_backend import TorchBackend
    from trainer.gate import GATE_MODEL

    route = read_route(AUTO)
    by_torch, by_onnx = TorchBackend.from_path(route.member("gate", "torch")), OnnxBackend(route.member("gate", "onnx"))
    assert by_torch.config == by_onnx.config == GATE_MODEL
    assert by_torch.summary["trained_with"] == "scrapy-captcha trainer gate" and by_torch.summary["validation"]["all"] >= 0.99


def test_an_unreadable_model_in_a_route_is_refused_at_start_up(tmp_path):
    path = route_file(tmp_path)
    (tmp_path / "generalist.onnx").write_bytes(b"\x08\x07" + bytes(range(256)) * 40)  # no metadata, garbage after
    with pytest.raises(WeightsError, match="generalist.onnx"):
        Solver.from_path(path)
    (tmp_path / "generalist.onnx").write_bytes(b"")
    with pytest.raises(WeightsError, match="generalist.onnx"):
        Solver.from_path(path)


def test_the_gate_and_both_models_read_one_prepared_array(route, seed_style):
    from scrapy_captcha.image import load_image, to_array

    keys = {config.input_key for config in route.configs}
    assert len(keys) == 1  # the route prepares each image once
    image = load_image(seed_style[0][0])
    for name in ("first", "otherwise"):  # the generalist may go on to other views: the route's reread does too
        solver = route.expert(name)
        assert solver.reread(image, solver.read_array(to_array(image, route.gate.config))) == solver.solve(image)
