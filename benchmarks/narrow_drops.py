"""``python -m benchmarks.narrow_drops``: which characters models drop, narrow ones or others.

Each weights file reads a labelled folder alone (no route, no other views, greedy CTC); a reading
that is its label less one character counts as a drop of that character, narrow (``I i l j J 1 f
t r``, :data:`trainer.render.base.NARROW_CHARACTERS`) or not. Also: accuracy both ways and the
readings too short or too long. It compares, for example, a model with more CTC frames per column
against the same training with one (README, "Narrow characters: a probe").

    python -m benchmarks.narrow_drops --data data/view-rules/narrow-rich --weights generalist runs/a/weights.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from trainer.render.base import NARROW_CHARACTERS as NARROW


def dropped(label: str, reading: str) -> str | None:
    """The character of ``label`` that ``reading`` lacks, if the reading is the label less one character."""
    if len(reading) != len(label) - 1:
        return None
    for index in range(len(label)):
        if label[:index] + label[index + 1:] == reading:
            return label[index]
    return None


def count_drops(labels: Sequence[str], readings: Sequence[str]) -> dict[str, Any]:
    """Accuracy both ways, short and long readings, and single drops of narrow and other characters."""
    drops = [dropped(label, reading) for label, reading in zip(labels, readings)]
    return {
        "images": len(labels),
        "case_sensitive": round(sum(r == label for label, r in zip(labels, readings)) / len(labels), 4),
        "any_case": round(sum(r.lower() == label.lower() for label, r in zip(labels, readings)) / len(labels), 4),
        "too_short": sum(len(r) < len(label) for label, r in zip(labels, readings)),
        "too_long": sum(len(r) > len(label) for label, r in zip(labels, readings)),
        "narrow_characters": sum(c in NARROW for label in labels for c in label),
        "other_characters": sum(c not in NARROW for label in labels for c in label),
        "narrow_dropped": sum(d is not None and d in NARROW for d in drops),
        "other_dropped": sum(d is not None and d not in NARROW for d in drops),
    }


def main(argv: list[str] | None = None) -> int:
    from scrapy_captcha import Solver
    from scrapy_captcha.weights import weights_path

    from .recognition import read_labelled_folder

    parser = argparse.ArgumentParser(prog="python -m benchmarks.narrow_drops", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a labelled folder ({index}-{label}.png)")
    parser.add_argument("--weights", nargs="+", required=True, help="weights files or bundled names (.pt or .onnx)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    images, labels = read_labelled_folder(args.data)
    if not images:
        parser.error(f"{args.data} holds no labelled images")
    results: dict[str, Any] = {"data": str(args.data), "weights": {}}
    for name in args.weights:
        solver = Solver.from_path(weights_path(name))
        readings = [prediction.text for prediction in solver.solve_batch(images)]
        results["weights"][name] = figures = count_drops(labels, readings)
        print(f"{name}: {figures['case_sensitive']:.2%} / {figures['any_case']:.2%}, too short {figures['too_short']}, "
              f"too long {figures['too_long']}, dropped {figures['narrow_dropped']} of {figures['narrow_characters']} narrow "
              f"and {figures['other_dropped']} of {figures['other_characters']} other characters")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
