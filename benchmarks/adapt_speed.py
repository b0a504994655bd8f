"""``python -m benchmarks.adapt_speed``: ``trainer adapt``'s steps per minute in float32 and in bfloat16.

A recording as a crawl of the demo site's ``night`` style leaves it (``example_project.demo_styles``,
a style no model here trained on): the bundled generalist reads each captcha, the site accepts the
readings that are right (any case), rejects the others, and skips those under 5% confidence. Each
setting then adapts the generalist on it (``python -m trainer adapt``, the loop without hand labels:
accepted answers as labels, the rest pseudo-labelled by the EMA teacher); settings take turns for
``--rounds`` rounds, so a noisy machine slows them alike. A run's rate is its steps per minute
between its first and last held-out evaluation (start-up and the first evaluation left out); the
table gives each setting's median, its ratio to float32, and how many of ``--fresh`` new captchas of
the style its weights read (any case, as the site judges; the held-out images are accepted answers,
which the start read right by construction, so they say little of what adapting bought).

    python -m benchmarks.adapt_speed --rounds 2     # writes benchmarks/adapt_speed.json
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scrapy_captcha.weights import weights_path

HERE = Path(__file__).resolve().parent
GENERALIST = weights_path("generalist")  # the bundled generalist's .pt

#: name -> ``trainer adapt`` options. The first is the baseline (the default on a CPU).
SETTINGS: dict[str, list[str]] = {"fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"]}


def draw_site(count: int, seed: int) -> tuple[list[str], list[bytes]]:
    """``count`` captchas of the demo site's ``night`` style: their texts and PNG bytes."""
    from example_project.demo_captchas import ALPHABET
    from example_project.demo_styles import night

    rng = random.Random(seed)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(4)) for _ in range(count)]
    return texts, [night(text, rng) for text in texts]


def read_any_case(weights: Path, texts: list[str], images: list[bytes]) -> float:
    """The share of ``images`` that ``weights`` read right, any case."""
    from scrapy_captcha.solver import Solver
    from scrapy_captcha.weights import load_weights

    readings = Solver(load_weights(weights)).solve_batch(images)
    return sum(p.text.lower() == text.lower() for p, text in zip(readings, texts)) / len(texts)


def record_site(folder: Path, count: int, seed: int) -> dict[str, int]:
    """``count`` demo ``night`` captchas read by the bundled generalist and judged as the site would."""
    from scrapy_captcha.recording import ACCEPTED, NOT_SUBMITTED, REJECTED, Recorder
    from scrapy_captcha.solver import Solver
    from scrapy_captcha.weights import load_weights

    texts, images = draw_site(count, seed)
    recorder, verdicts = Recorder(folder), {ACCEPTED: 0, REJECTED: 0, NOT_SUBMITTED: 0}
    for text, image, reading in zip(texts, images, Solver(load_weights(GENERALIST)).solve_batch(images)):
        if reading.confidence < 0.05:
            verdict, answer = NOT_SUBMITTED, None
        else:
            verdict, answer = (ACCEPTED if reading.text.lower() == text.lower() else REJECTED), reading.text
        recorder.record(image, verdict, reading.text, reading.confidence, "http://demo/", answer)
        verdicts[verdict] += 1
    return verdicts


def adapt_once(recording: Path, options: list[str], steps: int, eval_every: int,
               fresh: tuple[list[str], list[bytes]]) -> dict[str, float]:
    """One ``trainer adapt`` run: steps per minute between its first and last evaluation, held-out accuracy
    before and after, and the share of the ``fresh`` captchas its weights read."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "trainer", "adapt", str(recording), "--out", out, "--weights",
                        str(GENERALIST), "--steps", str(steps), "--eval-every", str(eval_every),
                        "--seed", "1", "--no-progress", *options], check=True, capture_output=True, text=True)
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        fresh_read = read_any_case(Path(out) / "weights.pt", *fresh)
    history = metrics["history"]
    if len(history) < 2:
        raise RuntimeError("fewer than two evaluations: raise --steps or lower --eval-every")
    first, last = history[0], history[-1]
    return {"steps_per_minute": (last["step"] - first["step"]) / (last["minutes"] - first["minutes"]),
            "held_out_before": metrics["final"]["before"]["sequence_accuracy"],
            "held_out_after": metrics["final"]["after"]["sequence_accuracy"], "fresh_any_case": fresh_read}


def main(argv: list[str] | None = None) -> int:
    from .__main__ import _write_atomic
    from .machine import describe

    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapt_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="adapt steps a run (default 300, as trainer adapt)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--captchas", type=int, default=400, help="captchas in the recording (default 400)")
    parser.add_argument("--fresh", type=int, default=400, help="new captchas the adapted weights read (default 400)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "adapt_speed.json", help="the figures as JSON (kept in git)")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as scratch:
        recording = Path(scratch) / "recording"
        verdicts = record_site(recording, args.captchas, seed=11)
        fresh = draw_site(args.fresh, seed=12)
        start = read_any_case(GENERALIST, *fresh)
        print(f"recording: {verdicts}; the generalist reads {start:.1%} of {args.fresh} fresh captchas", flush=True)
        for number in range(args.rounds):
            for name, options in SETTINGS.items():
                runs[name].append(adapt_once(recording, options, args.steps, args.eval_every, fresh))
                row = runs[name][-1]
                print(f"round {number + 1}: {name}: {row['steps_per_minute']:.0f} steps/min, held-out "
                      f"{row['held_out_before']:.3f} -> {row['held_out_after']:.3f}, fresh {row['fresh_any_case']:.3f}",
                      flush=True)
    baseline = statistics.median(run["steps_per_minute"] for run in runs[next(iter(SETTINGS))])
    settings = {}
    for name, values in runs.items():
        rate = statistics.median(run["steps_per_minute"] for run in values)
        settings[name] = {"options": SETTINGS[name], "runs": [{k: round(v, 4) for k, v in run.items()} for run in values],
                          "median_steps_per_minute": round(rate, 1), "ratio": round(rate / baseline, 2),
                          "median_held_out_after": round(statistics.median(run["held_out_after"] for run in values), 4),
                          "median_fresh_any_case": round(statistics.median(run["fresh_any_case"] for run in values), 4)}
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.adapt_speed", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "machine": describe(), "recording": {"style": "night", "captchas": args.captchas, "verdicts": verdicts},
        "fresh": {"captchas": args.fresh, "generalist_any_case": round(start, 4)},
        "steps": args.steps, "settings": settings,
    }
    print(f"| precision | steps/min (median) | x fp32 | {args.fresh} fresh captchas read, any case (median; "
          f"the generalist: {start:.1%}) |")
    print("|---|---:|---:|---:|")
    for name, row in settings.items():
        print(f"| `{' '.join(row['options'])}` | {row['median_steps_per_minute']:.0f} | {row['ratio']:.2f} | "
              f"{row['median_fresh_any_case']:.1%} |")
    _write_atomic(args.out, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
