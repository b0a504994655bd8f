"""Where one solve's time goes, step by step: ``python -m benchmarks.solve_steps MODEL.onnx [MODEL.onnx ...]``.

Each ONNX file is read by the onnx solver at batch 1 on one thread, the path the middleware takes
(``Solver.solve(png_bytes)``), cut into its steps: Pillow's ``Image.open`` (header) and ``load``
(PNG decode), the conversion to grey, the resize to the model's input, the array the model reads
(pixels / 255, white where the image does not reach), ``session.run``, CTC decoding, and each
solve timed whole as well; ``overhead`` is the whole solve minus its steps (the image caps, Python
calls). ``answer rules`` (decoding with ``CAPTCHA_ANSWER_CASE = "lower"``) is timed beside, as a
crawl with such a setting pays it instead of ``ctc decode``. The files take turns in rounds on
the same images, so a passing load hits all of them alike; medians in microseconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from .speed import interleaved_samples

#: The steps of ``Solver.solve`` at batch 1, in order (``solve`` is the whole call, timed apart).
STEPS = ("open", "png decode", "to grey", "resize", "to array", "forward", "ctc decode")


def step_latency(paths: Sequence[Path], images: Sequence[bytes], calls: int = 600, rounds: int = 6,
                 warmup: int = 10) -> dict[str, dict[str, float]]:
    """Median microseconds of each of :data:`STEPS`, of ``answer rules``, ``solve`` and ``overhead`` per ONNX file."""
    from PIL import Image

    from scrapy_captcha import Solver
    from scrapy_captcha.answers import answer_rules
    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.image import _fit, _flatten, _to_canvas

    def runner(path: Path):
        solver = Solver(OnnxBackend(path, threads=1))
        config, mode = solver.config, "L" if solver.config.channels == 1 else "RGB"
        rules = answer_rules(config, "lower", None)

        def run(data: bytes) -> list[float]:
            clock = time.perf_counter
            marks = [clock()]
            image = Image.open(io.BytesIO(data))
            marks.append(clock())
            image.load()
            marks.append(clock())
            grey = _flatten(image, mode)
            marks.append(clock())
            fitted, width = _fit(grey, config)
            marks.append(clock())
            array = _to_canvas(fitted, width, config)
            marks.append(clock())
            logits = solver.backend.run(array[None])
            marks.append(clock())
            solver._decode(logits, None)
            marks.append(clock())
            rules.decode(logits, config)
            marks.append(clock())
            solver.solve(data)
            marks.append(clock())
            return [(b - a) * 1e6 for a, b in zip(marks, marks[1:])]
        return run

    runners = {str(path): runner(path) for path in paths}
    out: dict[str, dict[str, float]] = {}
    for key, rows in interleaved_samples(runners, images, calls, rounds, warmup).items():
        figures = {step: statistics.median(row[i] for row in rows) for i, step in enumerate(STEPS)}
        figures["answer rules"] = statistics.median(row[len(STEPS)] for row in rows)
        figures["solve"] = statistics.median(row[-1] for row in rows)
        figures["overhead"] = statistics.median(row[-1] - sum(row[:len(STEPS)]) for row in rows)
        figures["calls"] = len(rows)
        out[key] = figures
    return out


def steps_table(latency: dict[str, dict[str, float]]) -> str:
    """:func:`step_latency`'s figures as Markdown, one row per file, microseconds."""
    columns = (*STEPS, "overhead", "solve", "answer rules")
    lines = ["| model file | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for key, figures in latency.items():
        lines.append(f"| {key} | " + " | ".join(f"{figures[c]:.0f}" for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.solve_steps``: microseconds per step of a solve, per ONNX file, files taking turns."""
    from .machine import describe
    from .recognition import ensure_test_set, read_labelled_folder

    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(prog="python -m benchmarks.solve_steps", description=main.__doc__)
    parser.add_argument("models", type=Path, nargs="*", help="ONNX files (default: every bundled model's)")
    parser.add_argument("--calls", type=int, default=600, help="solves per file (default 600, in 6 rounds)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="a folder of {index}-{label}.png images (default: the benchmark's 2000 captcha 0.7.1 images)")
    parser.add_argument("--out", type=Path, default=here / "data" / "solve_steps.json")
    args = parser.parse_args(argv)
    if args.models:
        missing = [str(path) for path in args.models if not path.is_file()]
        if missing:
            parser.error(f"no such ONNX file: {', '.join(missing)}")
        models = args.models
    else:
        from scrapy_captcha.weights import BUNDLED_DIR, bundled_models

        models = [BUNDLED_DIR / f"{name}.onnx" for name in bundled_models()]
    images = read_labelled_folder(args.images)[0] if args.images else ensure_test_set(here / "data" / "test-0.7.1", 2000, 4).images
    if not images:
        parser.error(f"no {{index}}-{{label}}.png images in {args.images}")
    load_before = os.getloadavg()
    latency = step_latency(models, images, calls=args.calls)
    result: dict[str, Any] = {"machine": describe(), "images": str(args.images or "benchmarks/data/test-0.7.1"),
                              "load_average_before": load_before, "load_average_after": os.getloadavg(),
                              "latency_us": latency}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(steps_table(latency))
    print(f"load average {load_before[0]:.2f} before, {result['load_average_after'][0]:.2f} after; wrote {args.out}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
