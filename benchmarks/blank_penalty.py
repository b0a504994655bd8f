"""``python -m benchmarks.blank_penalty``: how much to take from the generalist's CTC blank before decoding.

A model that never saw a style often gives a character's frames a little less probability than the
blank's, and the character is dropped. Taking a constant from the blank's logit (the route's
``otherwise_blank_penalty``, the Solver's ``blank_penalty``) reads such characters, at the risk of
reading noise as one. Each labelled set is read through the whole bundled route (the gate, both
models, the other views and their vote), once per penalty.

The penalty is chosen on our own sets (the positional folders; ``--draw-own FOLDER`` first draws two
of them: 600 images of our plain family struck through by thin lines, and 600 of it rich in narrow
characters, ``narrow-rich``); ``--report`` folders, such as the unseen styles, are measured the same
way but only report what a choice does (README, "The bundled route"). Writes
``benchmarks/blank_penalty.json``.

    python -m benchmarks.blank_penalty --draw-own data/view-rules data/generalist-test ... \\
        --report benchmarks/data/unseen/*
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from scrapy_captcha import Solver
from scrapy_captcha.routing import RoutedSolver
from trainer.metrics import score

from .machine import describe, shown_path
from .recognition import read_labelled_folder
from .view_rules import draw_once, draw_struck_through

OUT = Path(__file__).parent / "blank_penalty.json"
PENALTIES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5)


def draw_narrow_rich(folder: Path, count: int = 600, seed: int = 505) -> Path:
    """Our plain family at difficulty 0.5, 4 to 6 characters of the generalist's alphabet, each text rich in
    narrow characters (``I i l j J 1 f t r``, each character one of them with chance 0.4); drawn once
    (:func:`~benchmarks.view_rules.draw_once`)."""
    from trainer.render import TextSpec, build_drawer
    from trainer.render.base import GENERALIST_ALPHABET

    rng = random.Random(seed)
    drawer = build_drawer("plain", TextSpec(GENERALIST_ALPHABET, (4, 6), narrow=1.0), difficulty=0.5)
    return draw_once(folder, "narrow-rich", count, lambda index: drawer.draw(rng))


def score_penalties(route: RoutedSolver, folder: Path, penalties: Sequence[float]) -> dict[str, dict[str, float]]:
    """The route's accuracy on ``folder``, both ways, with each penalty on its ``otherwise`` model."""
    images, labels = read_labelled_folder(folder)
    reader = route.expert("otherwise")
    kept, scores = reader.blank_penalty, {}
    try:
        for penalty in penalties:
            reader.blank_penalty = penalty
            accuracy = score([route.solve(image).text for image in images], labels)
            scores[f"{penalty:g}"] = {"case_sensitive": round(accuracy["sequence_accuracy"], 4),
                                      "any_case": round(accuracy["sequence_accuracy_case_insensitive"], 4)}
    finally:
        reader.blank_penalty = kept
    return scores


def means(sets: dict[str, dict[str, dict[str, float]]], penalties: Sequence[float]) -> dict[str, dict[str, float]]:
    """Each penalty's mean over ``sets``, both ways."""
    return {f"{p:g}": {way: round(statistics.mean(s[f"{p:g}"][way] for s in sets.values()), 4)
                       for way in ("case_sensitive", "any_case")} for p in penalties} if sets else {}


def best_penalty(mean_scores: dict[str, dict[str, float]]) -> str:
    """The penalty with the highest mean any case (then case-sensitive; then the smallest)."""
    return max(mean_scores, key=lambda p: (mean_scores[p]["any_case"], mean_scores[p]["case_sensitive"], -float(p)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blank_penalty", description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", type=Path, help="our own labelled folders ({index}-{label}.png): the choice")
    parser.add_argument("--report", nargs="*", type=Path, default=[], help="labelled folders only reported (the unseen styles)")
    parser.add_argument("--weights", default="auto", help="a route (default: the bundled one)")
    parser.add_argument("--penalties", default=",".join(f"{p:g}" for p in PENALTIES))
    parser.add_argument("--draw-own", type=Path, metavar="FOLDER",
                        help="first draw our struck-through and narrow-rich sets under FOLDER and choose on them too")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    penalties = [float(p) for p in args.penalties.split(",")]
    if args.draw_own:
        args.data[:0] = [draw_struck_through(args.draw_own), draw_narrow_rich(args.draw_own)]
    route = Solver.from_path(args.weights, backend="onnx", threads=1)
    if not isinstance(route, RoutedSolver):
        parser.error(f"--weights {args.weights!r} is not a route")
    results: dict[str, Any] = {"command": "python -m benchmarks.blank_penalty " + " ".join(sys.argv[1:] if argv is None else argv),
                               "machine": describe(), "route": shown_path(route.route.path),
                               "shipped": route.route.otherwise_blank_penalty, "own": {}, "report": {}}
    for kind, folders in (("own", args.data), ("report", args.report)):
        for folder in folders:
            scores = results[kind][shown_path(folder)] = score_penalties(route, folder, penalties)
            print(f"{folder}: " + ", ".join(f"{p} {s['case_sensitive']:.1%} / {s['any_case']:.1%}" for p, s in scores.items()),
                  flush=True)
    results["own_mean"], results["report_mean"] = means(results["own"], penalties), means(results["report"], penalties)
    if results["own_mean"]:
        results["best_on_own"] = best_penalty(results["own_mean"])
        print(f"own sets' mean: {results['own_mean']}; best {results['best_on_own']}")
    if results["report_mean"]:
        print(f"reported sets' mean: {results['report_mean']}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
