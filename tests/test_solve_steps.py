"""``python -m benchmarks.solve_steps``: one solve cut into its steps, per ONNX file, files taking turns."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from captcha.image import ImageCaptcha

from benchmarks.solve_steps import STEPS
from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.weights import BUNDLED_DIR

REPO = Path(__file__).resolve().parent.parent


def test_every_step_of_a_solve_is_timed_for_each_file(tmp_path: Path) -> None:
    rng = random.Random(5)
    images = tmp_path / "images"
    images.mkdir()
    for index in range(1, 7):
        label = "".join(rng.choice(SEED_ALPHABET) for _ in range(4))
        (images / f"{index}-{label}.png").write_bytes(ImageCaptcha(160, 60).generate(label).getvalue())
    out = tmp_path / "steps.json"
    models = [BUNDLED_DIR / "default.onnx", BUNDLED_DIR / "generalist.onnx"]
    done = subprocess.run([sys.executable, "-m", "benchmarks.solve_steps", *map(str, models), "--images", str(images),
                           "--calls", "24", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    latency = json.loads(out.read_text())["latency_us"]
    assert list(latency) == [str(path) for path in models]
    for figures in latency.values():
        assert figures["calls"] == 24
        assert all(figures[step] > 0 for step in (*STEPS, "solve", "answer rules"))
        assert figures["forward"] > figures["ctc decode"]  # a network against a few numpy calls: far apart
    assert f"| {models[0]} |" in done.stdout and f"| {models[1]} |" in done.stdout


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.solve_steps", str(tmp_path / "nope.onnx")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "nope.onnx" in done.stderr
