"""The held-out "unseen styles" benchmark (issue 8): sets drawn by another package, scored, reported.

One real generator runs here: wheezy.captcha (in the test extra; it clashes with nothing), drawing
a small set exactly as ``make unseen-sets`` draws the full ones in its own venv. The bundled model
reads it through ``python -m benchmarks.unseen``, as a user runs it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.unseen.styles import STYLES
from scrapy_captcha.weights import BUNDLED_WEIGHTS, bundled_models, bundled_routes, load_weights

REPO = Path(__file__).resolve().parent.parent
COUNT = 12


def python_m(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def labels(folder: Path) -> list[str]:
    files = sorted(folder.glob("*.png"), key=lambda p: int(p.stem.split("-")[0]))
    return [p.stem.split("-", 1)[1] for p in files]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """``<tmp>/wheezy``: the wheezy style drawn with the default seed, as the benchmark expects it."""
    data = tmp_path_factory.mktemp("unseen")
    done = python_m("benchmarks.unseen.draw", "wheezy", str(data / "wheezy"), "--count", str(COUNT), "--seed", "8")
    assert done.returncode == 0, done.stderr
    assert f"wrote {COUNT} wheezy.captcha 3.2.2 images" in done.stdout
    return data


def test_a_set_is_labelled_images_and_a_manifest(data_dir):
    folder = data_dir / "wheezy"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert len(names) == COUNT
    style = STYLES["wheezy"]
    pattern = re.compile(rf"^(\d+)-([{re.escape(style.alphabet)}]{{4}})\.png$")
    assert all(pattern.match(n) for n in names), names
    assert sorted(int(pattern.match(n).group(1)) for n in names) == list(range(1, COUNT + 1))
    with Image.open(folder / names[0]) as image:
        assert image.size == (200, 75)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["generator"] == "wheezy.captcha" and manifest["version"] == "3.2.2"
    assert manifest["image_sizes"] == [[200, 75]] and manifest["lengths"] == [4, 4] and manifest["count"] == COUNT
    assert manifest["alphabet"] == style.alphabet and set(manifest["characters_seen"]) <= set(style.alphabet)
    assert "never training data" in manifest["held_out"]
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")], "partial folders left behind"


def test_a_set_is_repeatable_and_never_overwritten(data_dir, tmp_path):
    again = tmp_path / "again"
    assert python_m("benchmarks.unseen.draw", "wheezy", str(again), "--count", str(COUNT), "--seed", "8").returncode == 0
    assert labels(again) == labels(data_dir / "wheezy")
    refused = python_m("benchmarks.unseen.draw", "wheezy", str(again), "--count", "3")
    assert refused.returncode == 2 and "exists; remove it first" in refused.stderr
    assert len(labels(again)) == COUNT


def test_no_style_is_drawn_by_the_package_the_model_trains_on():
    assert len({s.package for s in STYLES.values()}) >= 6
    for style in STYLES.values():
        assert style.package != "captcha", style.name
        assert all("==" in r for r in style.requirements), f"{style.name}: unpinned requirement"
        assert style.lengths[0] <= style.lengths[1] and style.alphabet
    by_venv: dict[str, set] = {}
    for style in STYLES.values():  # one venv, one set of requirements: else each style would remake it
        by_venv.setdefault(style.venv, set()).add(style.requirements)
    assert all(len(r) == 1 for r in by_venv.values()), by_venv


def test_the_benchmark_scores_every_model_and_writes_the_section(data_dir, tmp_path):
    out = tmp_path / "out"
    done = python_m("benchmarks.unseen", "--styles", "wheezy", "--count", str(COUNT), "--data-dir", str(data_dir),
                    "--out", str(out), "--skip-ddddocr", "--weights", str(BUNDLED_WEIGHTS))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["sections"]["unseen"]["status"] == "done"
    unseen = results["unseen"]
    assert unseen["models"]["bundled"]["file"] == "scrapy_captcha/weights/default.pt"  # no path of this machine
    style = unseen["styles"]["wheezy"]
    assert style["generator"] == "wheezy.captcha" and style["count"] == COUNT
    assert "--styles wheezy --count 12 --seed 8" in style["command"]
    by_model = style["results"]
    others = {f"bundled:{name}" for name in bundled_models()[1:] + bundled_routes()}  # every bundled model and route has its column
    assert set(by_model) == {"bundled", *others, f"weights:{BUNDLED_WEIGHTS}"}
    bundled = by_model["bundled"]
    assert bundled["count"] == COUNT
    assert 0 <= bundled["sequence_accuracy"] <= bundled["sequence_accuracy_case_insensitive"] <= 1
    for key in ("sequence_accuracy", "sequence_accuracy_case_insensitive", "character_accuracy", "confusions",
                "any_case_lower_setting"):
        assert by_model[f"weights:{BUNDLED_WEIGHTS}"][key] == bundled[key]  # the same file reads the same
    assert 0 <= bundled["any_case_lower_setting"] <= 1

    alphabet = set(load_weights(BUNDLED_WEIGHTS).config.alphabet)
    assert bundled["labels_outside_alphabet"] == sum(not set(t) <= alphabet for t in labels(data_dir / "wheezy"))

    markdown = (out / "results.md").read_text()
    assert "## Unseen styles" in markdown and "| `wheezy` | wheezy.captcha 3.2.2 | 200×75 | 4, digits+upper | 12 |" in markdown
    lower = f"{bundled['any_case_lower_setting']:.1%}"
    assert f"{bundled['sequence_accuracy_case_insensitive']:.1%} ({lower})" in markdown  # the any-case cell's bracket


def test_the_readme_table_goes_between_its_markers(data_dir, tmp_path):
    out = tmp_path / "out"
    assert python_m("benchmarks.unseen", "--styles", "wheezy", "--count", str(COUNT), "--data-dir", str(data_dir),
                    "--out", str(out), "--skip-ddddocr").returncode == 0
    results = out / "results.json"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- benchmarks:start -->\n<!-- benchmarks:end -->\n\n## Unseen\n\n"
                      "<!-- unseen:start -->\nold\n<!-- unseen:end -->\n\ntail\n")
    assert python_m("benchmarks.report", str(results), "--check-readme", str(readme)).returncode == 1
    assert python_m("benchmarks.report", str(results), "--update-readme", str(readme)).returncode == 0
    text = readme.read_text()
    block = text.split("<!-- unseen:start -->")[1].split("<!-- unseen:end -->")[0]
    assert "old" not in block and "| `wheezy` |" in block and "**mean of the styles**" in block
    assert text.endswith("<!-- unseen:end -->\n\ntail\n")
    check = python_m("benchmarks.report", str(results), "--check-readme", str(readme))
    assert check.returncode == 0, check.stderr
