"""``python -m benchmarks.train_speed``: training steps per minute of the generalist's recipe, by speed knob.

Each setting runs the real loop (``python -m trainer train``: the synthetic stream drawn by the
renderer in worker processes, augmentation, the model, the optimiser) from the bundled generalist's
weights on the ``generalist-wide`` mix, batch 64, for ``--minutes``; settings take turns, for
``--rounds`` rounds, so a noisy machine slows them alike. A run's rate is its steps per minute after
its first epoch (start-up, the validation set and warm-up left out); the table gives each setting's
median over the rounds and its ratio to the first setting, the recipes' setting until now.

    python -m benchmarks.train_speed --minutes 2 --rounds 2     # writes benchmarks/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: name -> trainer options. The first is the baseline the others are compared with.
SETTINGS: dict[str, list[str]] = {
    "fp32, every image new, 1 drawing process": ["--precision", "fp32", "--echo", "1", "--workers", "1"],
    "fp32, every image new, 2 drawing processes": ["--precision", "fp32", "--echo", "1", "--workers", "2"],
    "bf16, every image new, 2 drawing processes": ["--precision", "bf16", "--echo", "1", "--workers", "2"],
    "fp32, each image twice, 2 drawing processes": ["--precision", "fp32", "--echo", "2", "--workers", "2"],
    "bf16, each image twice, 2 drawing processes": ["--precision", "bf16", "--echo", "2", "--workers", "2"],
}
MODEL = ["--init", "generalist", "--style", "generalist-wide", "--alphabet", "generalist", "--length", "1-12",
         "--batch-size", "64", "--steps-per-epoch", "40", "--epochs", "1000", "--val-size", "64", "--lr", "1e-4",
         "--no-progress", "--seed", "5"]


def steps_per_minute(options: list[str], minutes: float) -> float:
    """One short run of the trainer; its steps per minute after the first epoch."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "trainer", "train", "--out", out, *MODEL, *options, "--max-minutes", str(minutes)],
                       check=True, capture_output=True, text=True)
        history = json.loads((Path(out) / "metrics.json").read_text())["history"]
    if len(history) < 3:
        raise RuntimeError(f"too few epochs in {minutes} minutes to measure: raise --minutes")
    first, last = history[0], history[-2]  # the last epoch is cut short by the time budget
    return (last["step"] - first["step"]) / (last["minutes"] - first["minutes"])


def main(argv: list[str] | None = None) -> int:
    from .__main__ import _write_atomic
    from .machine import describe

    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="each run's time budget (default 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "train_speed.json", help="the figures as JSON (kept in git)")
    args = parser.parse_args(argv)

    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for number in range(args.rounds):
        for name, options in SETTINGS.items():
            rates[name].append(steps_per_minute(options, args.minutes))
            print(f"round {number + 1}: {name}: {rates[name][-1]:.0f} steps/min", flush=True)
    baseline = statistics.median(rates[next(iter(SETTINGS))])
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.train_speed", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "machine": describe(),
        "batch_size": 64,
        "settings": {name: {"options": SETTINGS[name], "steps_per_minute": [round(r, 1) for r in values],
                            "median": round(statistics.median(values), 1),
                            "ratio": round(statistics.median(values) / baseline, 2)} for name, values in rates.items()},
    }
    print("| setting | trainer options | steps/min (median) | images/s | x baseline |")
    print("|---|---|---:|---:|---:|")
    for name, row in results["settings"].items():
        print(f"| {name} | `{' '.join(row['options'])}` | {row['median']:.0f} | {row['median'] * 64 / 60:.0f} | {row['ratio']:.2f} |")
    _write_atomic(args.out, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
