"""``python -m benchmarks.view_rules``: the views' rules scored on the same readings of a labelled set."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.recognition import read_labelled_folder
from benchmarks.view_rules import MORE_VIEWS, THRESHOLDS, draw_struck_through, read_views, score
from scrapy_captcha import Solver
from scrapy_captcha.views import VIEWS
from trainer.render import TextSpec, build_drawer
from trainer.render.base import GENERALIST_ALPHABET

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Our broad families, which the generalist often reads unsure: 16 labelled images."""
    folder = tmp_path_factory.mktemp("views")
    drawer, rng = build_drawer("styled:2,scattered:1", TextSpec(GENERALIST_ALPHABET[:62], (4, 6))), random.Random(9)
    for index in range(1, 17):
        image, label = drawer.draw(rng)
        image.save(folder / f"{index}-{label}.png")
    return folder


def test_the_rules_are_scored_on_one_reading_of_each_view(labelled: Path) -> None:
    solver = Solver.from_path("generalist", backend="onnx")
    rows = read_views(solver, labelled, VIEWS)
    assert len(rows) == 16 and all(len(readings) == 1 + len(VIEWS) for _, readings in rows)
    # the vote under the solver's own threshold is what a solver with views answers
    with_views = Solver(solver.backend, views_below=0.8)
    images, labels = read_labelled_folder(labelled)
    assert labels == [label for label, _ in rows]
    right = sum(with_views.solve(image).text == label for image, label in zip(images, labels))
    assert score(rows, "vote", 0.8, len(VIEWS))["case_sensitive"] == round(right / 16, 4)
    # no views at all: the first reading, whatever the rule
    assert score(rows, "vote", 0.0, len(VIEWS)) == score(rows, "most-confident", 0.0, len(VIEWS)) == score(rows, "first", 0, 0)
    # leaving the last view out is voting with the others only
    assert score(rows, "vote", 1.01, len(VIEWS), without=len(VIEWS)) == score(rows, "vote", 1.01, len(VIEWS) - 1)


def test_the_struck_through_set_is_our_plain_text_with_lines_in_its_colour(tmp_path: Path) -> None:
    folder = draw_struck_through(tmp_path, count=12)
    images, labels = read_labelled_folder(folder)
    assert folder.name == "struck-through" and len(images) == 12 and not list(tmp_path.glob(".*"))
    assert all(4 <= len(label) <= 8 and set(label) <= set(GENERALIST_ALPHABET) for label in labels)
    assert draw_struck_through(tmp_path, count=12) == folder  # drawn once
    assert labels == read_labelled_folder(draw_struck_through(tmp_path / "again", count=12))[1]  # from its seed


def test_the_command_writes_every_rule_and_threshold(labelled: Path, tmp_path: Path) -> None:
    out = tmp_path / "rules.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.view_rules", str(labelled), "--more-views", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())["sets"][str(labelled)]
    assert result["images"] == 16
    for rule in ("most-confident", "vote"):
        assert list(result[rule]) == [f"{threshold:g}" for threshold in THRESHOLDS]
        assert f"{rule}, {len(VIEWS) + len(MORE_VIEWS)} views" in result
    assert list(result["vote without"]) == list(VIEWS)
    assert "vote" in done.stdout and str(labelled) in done.stdout
