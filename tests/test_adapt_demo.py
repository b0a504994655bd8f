"""``python -m example_project.demo --adapt`` at a small size: crawl, record, adapt, crawl again."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scrapy_captcha.recording import read_attempts
from scrapy_captcha.weights import BUNDLED_WEIGHTS, load_weights

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")

ROUND = re.compile(r"round (\d)  (\S+) +(\d+) captchas met, +(\d+) accepted on the first try .* crawl +[\d.]+ s")


def test_demo_adapt_mode_runs_the_loop(tmp_path):
    """The first crawl reads with the default model; ``--adapt-from generalist`` starts the adapt from the other."""
    folder = tmp_path / "recording"
    result = subprocess.run(
        [sys.executable, "-m", "example_project.demo", "--adapt", "--categories", "1", "--items-per-category", "12",
         "--rounds", "1", "--adapt-steps", "10", "--record-dir", str(folder), "--goal", "0", "--adapt-from", "generalist"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rounds = [match.groups() for match in ROUND.finditer(result.stdout)]
    assert [(number, weights) for number, weights, *_ in rounds] == [("1", "bundled"), ("2", "round-1")], result.stdout
    assert int(rounds[1][2]) == 15  # one captcha per page with --adapt: home, 2 listing pages, 12 products
    [first] = [line for line in result.stdout.splitlines() if "round 1" in line]
    assert re.search(r"adapt +[\d.]+ s", first) and "first-try acceptance" in result.stdout
    adapted = load_weights(tmp_path / "recording-runs" / "round-1" / "weights.pt")
    assert adapted.config.alphabet == load_weights("generalist").config.alphabet  # not the default model's 58
    attempts = read_attempts(folder)  # both crawls recorded into the one folder
    assert len(attempts) >= sum(int(met) for _, _, met, _ in rounds)
