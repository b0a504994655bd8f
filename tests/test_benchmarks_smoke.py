"""A seconds-long run of ``python -m benchmarks --quick``: results.json and results.md are written and agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_results(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "--quick", "--count", "16", "--skip", "training,memory,crawl,unseen",
               "--out", str(tmp_path), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["cores"] >= 1 and results["machine"]["torch"]
    assert results["test_set"]["count"] == 16
    assert len(list((tmp_path / "data" / "test-0.7.1-quick").glob("*-*.png"))) == 16
    assert {s: results["sections"][s]["status"] for s in ("training", "recognition", "speed", "memory", "crawl", "unseen")} == {
        "training": "skipped", "recognition": "done", "speed": "done", "memory": "skipped", "crawl": "skipped",
        "unseen": "skipped"}

    bundled = results["recognition"]["bundled"]
    assert bundled["count"] == 16
    assert bundled["sequence_accuracy_case_insensitive"] >= 0.5  # labels read from the file names and matched
    assert "seed-vgg" in results["recognition"] and results["models"]["seed-vgg"]["parameters"] > 60_000_000
    for threads in ("1", "2"):
        latency = results["speed"]["latency"][threads]["bundled"]
        assert latency["calls"] == 6 and 0 < latency["median_ms"] <= latency["p95_ms"]
    assert results["speed"]["throughput"]["bundled"]["images_per_second"] > 0
    assert results["ratios"]["seed-vgg"]["file_size_ratio"] > 1

    markdown = (tmp_path / "results.md").read_text()
    readme = subprocess.run([sys.executable, "-m", "benchmarks.report", str(tmp_path / "results.json"), "--readme"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "| Captcha accuracy, any case |" in readme
    assert readme in markdown  # the README's performance section is the one in results.md
    assert "Captcha accuracy, any case" in markdown and results["command"] in markdown


def test_readme_performance_tables_match_results() -> None:
    """The README's tables are the ones rendered from benchmarks/results.json (once both exist)."""
    results, readme = REPO / "benchmarks" / "results.json", REPO / "README.md"
    if not results.exists() or not readme.exists() or "<!-- benchmarks:start -->" not in readme.read_text(encoding="utf-8"):
        pytest.skip("no benchmarks/results.json, or no <!-- benchmarks:start --> block in README.md yet")
    check = subprocess.run([sys.executable, "-m", "benchmarks.report", str(results), "--check-readme", str(readme)],
                           cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_full_runs_unseen_section_reads_with_every_bundled_model_and_the_route():
    from benchmarks.__main__ import unseen_contenders
    from benchmarks.contenders import TorchContender
    from scrapy_captcha.weights import BUNDLED_WEIGHTS, bundled_models, bundled_routes

    bundled, ddddocr = TorchContender("bundled", "scrapy-captcha bundled model", BUNDLED_WEIGHTS), object()
    chosen = unseen_contenders({"bundled": bundled, "ddddocr": ddddocr, "seed-vgg": object()})
    # the README's unseen table has a column for each, "auto" (the middleware's default) among them
    assert list(chosen) == ["bundled", *(f"bundled:{name}" for name in bundled_models()[1:]),
                            *(f"bundled:{name}" for name in bundled_routes()), "ddddocr"]
    assert "bundled:auto" in chosen and "bundled:generalist" in chosen
    assert chosen["bundled"] is bundled and chosen["ddddocr"] is ddddocr  # loaded once for the whole run
