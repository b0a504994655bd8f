"""Peak resident memory of a fresh process that loads one model and solves 100 images.

Each contender runs in its own new interpreter (``python -m benchmarks.memory ...``), which
reports its own peak resident set size (``VmHWM``, else ``ru_maxrss``) as JSON on its last line. A process that
only imports torch and scrapy_captcha gives the floor that every PyTorch model pays.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from .machine import REPO, shell

KINDS = ("torch", "ddddocr", "baseline")


def command(kind: str, data: Path, count: int, weights: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.memory", kind, "--data", str(data), "--count", str(count)]
    return argv + (["--weights", str(weights)] if weights else [])


def measure(kind: str, data: Path, count: int, weights: Path | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run the child for one contender and return its report (``peak_rss_mib``, ``solved``) and command."""
    argv = command(kind, data, count, weights)
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
    parser.add_argument("--weights", type=Path, help="scrapy-captcha weights file (kind torch)")
    args = parser.parse_args(argv)

    images = [p.read_bytes() for p in sorted(args.data.glob("*.png"))[: args.count]]
    if args.kind == "baseline":
        import torch  # noqa: F401

        import scrapy_captcha  # noqa: F401

        solved = 0
    else:
        if args.kind == "torch":
            from scrapy_captcha import Solver

            solver = Solver.from_path(args.weights)
            solve = lambda image: solver.solve(image).text  # noqa: E731
        else:  # ddddocr alone, without torch, as a scraper using it would run
            import contextlib
            import io

            import ddddocr

            with contextlib.redirect_stdout(io.StringIO()):
                solve = ddddocr.DdddOcr(show_ad=False).classification
        for image in images:
            solve(image)
        solved = len(images)
    print(json.dumps({"kind": args.kind, "solved": solved, "peak_rss_mib": peak_rss_mib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
