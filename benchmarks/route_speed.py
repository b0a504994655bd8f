"""``python -m benchmarks.route_speed``: what the bundled route costs per image, against its two models and ddddocr.

Each contender solves the same images one at a time (batch 1, one thread, PNG bytes -> text, the
onnx backend as a plain install runs it), in interleaved rounds so a noisy machine slows them alike.
Two image sets: the seed style (the route's gate and the default model) and the unseen styles
(the gate, then the generalist, and both models where the default model is unsure). Prints and
writes medians in milliseconds, and the route's share of images each model answered.

    python -m benchmarks.route_speed --calls 600      # writes benchmarks/route_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent


def _images(folder: Path, limit: int) -> list[bytes]:
    from .recognition import read_labelled_folder

    return read_labelled_folder(folder)[0][:limit]


def time_rounds(solvers: dict[str, Callable[[bytes], Any]], images: list[bytes], rounds: int) -> dict[str, float]:
    """Median milliseconds per image of each solver, over ``rounds`` interleaved passes."""
    times: dict[str, list[float]] = {name: [] for name in solvers}
    per_round = max(1, len(images) // rounds)
    for number in range(rounds):
        chunk = images[number * per_round:(number + 1) * per_round]
        for name, solve in solvers.items():
            for image in chunk:
                began = time.perf_counter()
                solve(image)
                times[name].append((time.perf_counter() - began) * 1000)
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    from scrapy_captcha import Solver
    from scrapy_captcha.weights import weights_path

    from .contenders import load_ddddocr
    from .machine import describe

    parser = argparse.ArgumentParser(prog="python -m benchmarks.route_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="images per set and contender (default 300)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=HERE / "route_speed.json", help="the figures as JSON (kept in git)")
    args = parser.parse_args(argv)

    from .recognition import ensure_test_set

    seed_images = ensure_test_set(HERE / "data" / "test-0.7.1", 2000, 4).images[:args.calls]  # drawn if missing
    unseen_dir = HERE / "data" / "unseen"
    styles = sorted(p for p in unseen_dir.iterdir() if p.is_dir())
    per_style = max(1, args.calls // len(styles))
    unseen_images = [image for style in styles for image in _images(style, per_style)]
    solvers = {name: Solver.from_path(weights_path(name), backend="onnx", threads=1) for name in ("default", "generalist", "auto")}
    calls: dict[str, Callable[[bytes], Any]] = {name: solver.solve for name, solver in solvers.items()}
    ddddocr, why = load_ddddocr()
    if ddddocr is not None:
        ddddocr.set_threads(1)
        calls["ddddocr"] = ddddocr.solve
    result: dict[str, Any] = {"machine": describe(), "load_average_before": os.getloadavg(), "calls": args.calls,
                              "command": "python -m benchmarks.route_speed" + (f" --calls {args.calls}" if args.calls != 300 else ""),
                              "ddddocr": why or "measured", "sets": {}}
    for label, images in (("seed style (captcha 0.7.1)", seed_images), ("unseen styles", unseen_images)):
        images = images[:len(images) // args.rounds * args.rounds]  # equal rounds
        route = solvers["auto"]
        before, viewed = dict(route.routed), route.expert("otherwise").viewed
        medians = time_rounds(calls, images, args.rounds)
        answered = {name: route.routed[name] - before[name] for name in route.routed}
        answered["otherwise, with other views"] = route.expert("otherwise").viewed - viewed
        result["sets"][label] = {"images": len(images), "median_ms": medians, "route_answered_by": answered}
        ratio = f", ddddocr / route {medians['ddddocr'] / medians['auto']:.1f}x" if "ddddocr" in medians else ""
        print(f"{label}: {len(images)} images; " + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items()) + ratio
              + f"; the route's answers: {answered}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
