"""``python -m benchmarks.unseen``: the "unseen styles" section of ``python -m benchmarks``, on its own.

Draws any missing held-out set (``benchmarks/unseen/sets.py``), scores the bundled model, ddddocr
(where installed) and every ``--weights`` file on each, and puts the section into
``results.json``/``results.md`` in ``--out`` beside the other sections' figures, which it keeps
(the section itself is replaced: measure candidates with ``--out`` elsewhere, as below, so the
README's table keeps the full run).

    nice -n 10 python -m benchmarks.unseen                               # all styles, 500 images each
    python -m benchmarks.unseen --weights runs/generalist/weights.pt --skip-ddddocr --out /tmp/cmp
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .sets import DEFAULT_COUNT, DEFAULT_DATA, DEFAULT_SEED
from .styles import STYLES

HERE = Path(__file__).resolve().parents[1]


def load_contenders(weights: list[Path], ddddocr: bool, bundled: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The contenders by key, and notes on any left out."""
    from scrapy_captcha.weights import BUNDLED_WEIGHTS, bundled_models, bundled_routes, weights_path

    from ..contenders import TorchContender, load_ddddocr

    contenders: dict[str, Any] = {}
    notes = []
    if bundled:  # every bundled model: the default one, and those chosen by name (CAPTCHA_WEIGHTS = "generalist")
        contenders["bundled"] = TorchContender("bundled", "scrapy-captcha bundled model", BUNDLED_WEIGHTS)
        for name in bundled_models()[1:]:
            contenders[f"bundled:{name}"] = TorchContender(f"bundled:{name}", f"scrapy-captcha bundled {name} model",
                                                           weights_path(name))
        for name in bundled_routes():  # "auto", the middleware's default: a style gate picks one of the two
            contenders[f"bundled:{name}"] = TorchContender(f"bundled:{name}", f"scrapy-captcha bundled route {name!r}",
                                                           weights_path(name))
    for path in weights:
        key = f"weights:{path}"
        contenders[key] = TorchContender(key, f"weights {path}", path)
    if ddddocr:
        found, why = load_ddddocr()
        if found is None:
            notes.append(f"ddddocr: not measured: {why}")
        else:
            contenders["ddddocr"] = found
    return contenders, notes


def section(contenders: dict[str, Any], data_dir: Path, styles: list[str], count: int, seed: int,
            command: str) -> dict[str, Any]:
    """The section's results (what ``results.json`` holds under ``unseen``)."""
    import torch

    from ..machine import describe
    from .measure import measure

    torch.set_num_threads(os.cpu_count() or 1)
    return {"command": command, "machine": describe(), **measure(contenders, data_dir, styles, count, seed)}


def write_results(out: Path, unseen: dict[str, Any] | None, status: dict[str, Any], notes: list[str]) -> None:
    """Put the section into ``out/results.json`` (kept otherwise) and re-render ``out/results.md``."""
    from ..__main__ import write_results_files
    from ..machine import describe
    from ..report import ratios

    path = out / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = {"command": "python -m benchmarks.unseen (no full run in this folder)", "machine": describe(),
                   "quick": False, "models": {}, "notes": [], "sections": {}}
    if unseen is not None:
        results["unseen"] = unseen
    else:  # figures from an earlier run must not pass for this one's
        results.pop("unseen", None)
    results.setdefault("sections", {})["unseen"] = status
    results.setdefault("notes", []).extend(notes)
    results["ratios"] = ratios(results)
    write_results_files(out, results)


def parse_styles(text: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()] or list(STYLES)
    unknown = [n for n in names if n not in STYLES]
    if unknown:
        parser.error(f"unknown style(s): {', '.join(unknown)}; choose from {', '.join(STYLES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unseen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default="", help=f"comma-separated (default: all): {','.join(STYLES)}")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"images per set (default: {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the sets (default: {DEFAULT_SEED})")
    parser.add_argument("--weights", type=Path, action="append", default=[], help="also measure this weights file; repeatable")
    parser.add_argument("--no-bundled", dest="bundled", action="store_false", help="leave the bundled model out")
    parser.add_argument("--skip-ddddocr", dest="ddddocr", action="store_false", help="leave ddddocr out")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="the sets (default: benchmarks/data/unseen)")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and results.md are (default: benchmarks/)")
    args = parser.parse_args(argv)
    styles = parse_styles(args.styles, parser)
    for path in args.weights:
        if not path.is_file():
            parser.error(f"--weights {path}: no such file")
    command = " ".join(["python -m benchmarks.unseen", *map(shlex.quote, argv)])

    began = time.monotonic()
    contenders, notes = load_contenders([p.resolve() for p in args.weights], args.ddddocr, args.bundled)
    for note in notes:
        print(f"note: {note}", flush=True)
    if not contenders:
        parser.error("nothing to measure: --no-bundled, --skip-ddddocr and no --weights")
    unseen = None
    try:
        unseen = section(contenders, args.data_dir.resolve(), styles, args.count, args.seed, command)
        status: dict[str, Any] = {"status": "done"}
    except Exception as exc:  # reported in results.md like any failed section
        traceback.print_exc()
        status = {"status": "failed", "why": f"{type(exc).__name__}: {exc}"[:2000]}
    status["minutes"] = (time.monotonic() - began) / 60
    status["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write_results(args.out.resolve(), unseen, status, notes)
    print(f"unseen styles: {status['status']} in {status['minutes']:.1f} min; wrote {args.out / 'results.json'} and "
          f"{args.out / 'results.md'}", flush=True)
    return 0 if status["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
