"""``python -m benchmarks --quick --adapt``: the adapt section runs its scenarios and lands in results.json and results.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scrapy_captcha.weights import BUNDLED_WEIGHTS

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")

OTHER_SECTIONS = "training,recognition,speed,memory,worker,crawl,unseen,hostile,ddddocr"


def test_quick_adapt_section(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "--quick", "--adapt", "--count", "4", "--skip", OTHER_SECTIONS,
               "--out", str(tmp_path), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sections"]["adapt"]["status"] == "done"
    scenarios = results["adapt"]["scenarios"]
    assert [s["scenario"] for s in scenarios] == ["loop:ribbon", "hand:night"]
    # hand:night's first crawl reads with the default model, its adapt starts from the generalist
    assert [s["start"] for s in scenarios] == ["bundled", "bundled+adapt-from-generalist"]
    for scenario in scenarios:
        first, second = scenario["rounds"]  # --quick: one adapt between two crawls
        assert (first["weights"], second["weights"]) == ("bundled", "round-1")
        assert first["met"] >= 1 and first["adapt_seconds"] > 0 and second["adapt_seconds"] is None
        assert 0 <= second["rate"] <= 1
    assert (tmp_path / "data" / "adapt-quick" / "loop-ribbon" / "recording-runs" / "round-1" / "weights.pt").is_file()
    assert "## Learning a site's captchas (adapt)" in (tmp_path / "results.md").read_text()
    assert "`hand:night` | 2 | round-1" in (tmp_path / "results.md").read_text()


def test_the_adapt_section_is_skipped_without_the_flag(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "--quick", "--count", "4", "--skip", OTHER_SECTIONS,
               "--out", str(tmp_path), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    section = json.loads((tmp_path / "results.json").read_text())["sections"]["adapt"]
    assert section == {"status": "skipped", "why": "long (tens of minutes): run with --adapt"}


def test_held_out_score_reads_through_the_crawls_answer_rules(tmp_path: Path) -> None:
    from captcha.image import ImageCaptcha

    from benchmarks.adapt import held_out_score

    texts = ["AB3X", "K7PQ", "ZZ42", "M4NW"]
    for index, text in enumerate(texts):
        ImageCaptcha(width=160, height=60).write(text, str(tmp_path / f"{index}-{text}.png"))
    (tmp_path / "9-QQQQ.png").write_bytes((tmp_path / "0-AB3X.png").read_bytes())  # an image under a wrong label
    scored = held_out_score(BUNDLED_WEIGHTS, tmp_path, "upper", None)
    assert scored["images"] == 5 and 3 <= scored["right"] <= 4 and scored["rate"] == scored["right"] / 5
    assert sum(n for pair, n in scored["misread"].items() if pair.startswith("Q->")) >= 3  # QQQQ read as AB3X
    # digits left out of the site's alphabet: no answer can hold one, so the labels with digits are missed
    assert held_out_score(BUNDLED_WEIGHTS, tmp_path, "upper", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")["right"] == 0


def test_the_loop_crawls_with_the_route_and_adapts_the_model_it_picks(tmp_path: Path) -> None:
    from scrapy_captcha.routing import RoutedSolver
    from scrapy_captcha.solver import Solver

    command = [sys.executable, "-m", "benchmarks.adapt", "--scenario", "loop:ribbon", "--weights", "auto", "--rounds", "1",
               "--categories", "1", "--items", "6", "--adapt-steps", "5", "--json", str(tmp_path / "adapt.json"),
               "--out", str(tmp_path / "runs")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "adapt.json").read_text())[-1]
    assert result["start"] == "auto" and [r["weights"] for r in result["rounds"]] == ["auto", "round-1"]
    assert result["rounds"][0]["met"] >= 1
    adapted = Solver.from_path(tmp_path / "runs" / "loop-ribbon-auto" / "recording-runs" / "round-1" / "weights.pt")
    assert not isinstance(adapted, RoutedSolver)  # one model, the route's pick for the recording, adapted


def test_held_out_folder_is_the_packages_unseen_set_never_the_pools_own_images(tmp_path: Path) -> None:
    from benchmarks.adapt import held_out_folder

    for name in ("wheezy", "django-simple"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"seed": 8, "count": 500}))
    assert held_out_folder("pool-wheezy", 0, tmp_path) == tmp_path / "wheezy"
    assert held_out_folder("django", 0, tmp_path) == tmp_path / "django-simple"
    assert held_out_folder("pool-wheezy", 8, tmp_path) is None  # the pool would be the held-out images themselves
    assert held_out_folder("pool-claptcha", 0, tmp_path) is None  # no set drawn
    assert held_out_folder("ribbon", 0, tmp_path) is None  # the demo site's own style: no package's set


def test_adapt_speed_pairs_float32_and_bfloat16_runs_on_one_recording(tmp_path: Path) -> None:
    from benchmarks.adapt_speed import main

    assert main(["--steps", "4", "--eval-every", "2", "--captchas", "60", "--fresh", "20", "--rounds", "1",
                 "--out", str(tmp_path / "a.json")]) == 0
    results = json.loads((tmp_path / "a.json").read_text())
    assert sum(results["recording"]["verdicts"].values()) == 60 and results["recording"]["verdicts"]["accepted"] > 0
    assert list(results["settings"]) == ["fp32", "bf16"] and results["settings"]["fp32"]["ratio"] == 1.0
    for setting in results["settings"].values():
        (run,) = setting["runs"]
        assert run["steps_per_minute"] > 0 and 0 <= run["held_out_after"] <= 1 and 0 <= run["fresh_any_case"] <= 1
    assert 0 <= results["fresh"]["generalist_any_case"] <= 1 and results["fresh"]["captchas"] == 20


def test_the_held_out_score_reads_with_what_the_crawls_learned(tmp_path: Path) -> None:
    from benchmarks.adapt import learned_shape
    from scrapy_captcha.learning import KIND_ALPHABETS, AnswerShape
    from scrapy_captcha.recording import ACCEPTED, REJECTED, Recorder
    from tests.hostile_site import captcha_png

    recorder = Recorder(tmp_path)
    for answer in ["QXKA", "ZBMN", "HHPW", "WWZA"] * 4:  # 16 accepted answers of capitals: 64 characters
        recorder.record(captcha_png(), ACCEPTED, answer, 0.9, "http://site/", answer)
    recorder.record(captcha_png(), REJECTED, "QQ12", 0.9, "http://site/", "QQ12")  # a rejected answer teaches nothing
    # the case is the crawl's setting, so the length and the kind are learned
    shape, settings = learned_shape(tmp_path, None, "upper", None, None)
    assert shape == AnswerShape(4, None, "letters") and settings == ("upper", (4, 4), KIND_ALPHABETS["letters"])
    shape, settings = learned_shape(tmp_path, 0, "upper", "ABC", None)  # nothing learned: the crawl's settings
    assert not shape and settings == ("upper", None, "ABC")
