"""Peak resident memory of a fresh process that loads one model and solves 100 images.

Each contender runs in its own new interpreter (``python -m benchmarks.memory ...``), which
reports its own peak resident set size (``VmHWM``, else ``ru_maxrss``), the seconds its imports
took and the milliseconds its model took to load, as JSON on its last line. Kinds: ``onnx`` and
``torch`` (scrapy_captcha's Solver with that backend; ``onnx`` never imports torch), ``ddddocr``,
and ``baseline``: a process that only imports torch and scrapy_captcha, the floor that every
PyTorch model pays. With ``--scrapy`` the process imports Scrapy first, as a crawl worker does.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .machine import REPO, shell

KINDS = ("onnx", "torch", "ddddocr", "baseline")


def command(kind: str, data: Path, count: int, weights: Path | None = None, scrapy: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.memory", kind, "--data", str(data), "--count", str(count)]
    return argv + (["--weights", str(weights)] if weights else []) + (["--scrapy"] if scrapy else [])


def measure(kind: str, data: Path, count: int, weights: Path | None = None, timeout: float = 600,
            scrapy: bool = False) -> dict[str, Any]:
    """Run the child for one contender and return its report (``peak_rss_mib``, ``solved``, ``load_ms``) and command."""
    argv = command(kind, data, count, weights, scrapy)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{shell(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["command"] = shell(argv)
    return report


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    Linux's ``VmHWM`` first: ``ru_maxrss`` survives ``exec``, so a child started from a big parent
    would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--data", type=Path, required=True, help="folder of {index}-{label}.png images")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--weights", type=Path, help="scrapy-captcha weights file (kinds onnx and torch; default: bundled)")
    parser.add_argument("--scrapy", action="store_true", help="import Scrapy first, as a crawl worker does")
    args = parser.parse_args(argv)

    images = [p.read_bytes() for p in sorted(args.data.glob("*.png"))[: args.count]]
    began = time.perf_counter()
    if args.scrapy:
        import scrapy  # noqa: F401
        import scrapy.crawler  # noqa: F401
    load_ms = None
    if args.kind == "baseline":
        import torch  # noqa: F401

        import scrapy_captcha  # noqa: F401

        solved = 0
        imported = time.perf_counter()
    else:
        if args.kind in ("onnx", "torch"):
            from scrapy_captcha import Solver
            from scrapy_captcha.backends import installed

            if args.kind == "torch":
                import torch  # noqa: F401  (the import is part of the torch backend's cost, counted in import_s)
            elif installed("onnx"):
                import onnxruntime  # noqa: F401
            imported = time.perf_counter()
            solver = Solver.from_path(args.weights, backend=args.kind)
            solve = lambda image: solver.solve(image).text  # noqa: E731
        else:  # ddddocr alone, without torch, as a scraper using it would run
            import contextlib
            import io

            import ddddocr

            imported = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                solve = ddddocr.DdddOcr(show_ad=False).classification
        load_ms = (time.perf_counter() - imported) * 1000
        for image in images:
            solve(image)
        solved = len(images)
    print(json.dumps({"kind": args.kind, "solved": solved, "peak_rss_mib": peak_rss_mib(), "scrapy": args.scrapy,
                      "import_s": imported - began, "load_ms": load_ms, "torch_imported": "torch" in sys.modules}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
