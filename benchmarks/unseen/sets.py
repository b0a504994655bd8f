"""Make every held-out set: one venv per generator package, then its sets drawn in that venv.

    python -m benchmarks.unseen.sets                      # all styles, 500 images each (make unseen-sets)
    python -m benchmarks.unseen.sets --styles wheezy --count 50 --data-dir /tmp/unseen

A venv is ``.venv-unseen-<name>/`` at the repository root, made once with the style's pinned
requirements (PyPI); a set is ``<data-dir>/<style>/`` and is reused while its manifest says it has
the images asked for. Standard library only, so it runs under any Python 3.10+.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .draw import MANIFEST
from .styles import STYLES, Style

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO / "benchmarks" / "data" / "unseen"
DEFAULT_COUNT = 500
DEFAULT_SEED = 8


def venv_dir(style: Style) -> Path:
    return REPO / f".venv-unseen-{style.venv}"


def ensure_venv(style: Style) -> Path:
    """The Python of ``style``'s venv, made (or remade when its requirements changed) first."""
    folder = venv_dir(style)
    stamp = folder / ".installed"
    wanted = "\n".join(style.requirements) + "\n"
    python = folder / "bin" / "python"
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"making {folder.name}: {' '.join(style.requirements)}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *style.requirements], check=True)
    stamp.write_text(wanted)
    return python


def draw_command(style: Style, out: Path, count: int, seed: int) -> list[str]:
    return [str(venv_dir(style) / "bin" / "python"), "-m", "benchmarks.unseen.draw", style.name, str(out),
            "--count", str(count), "--seed", str(seed)]


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_set(style: Style, data_dir: Path, count: int, seed: int = DEFAULT_SEED) -> Path:
    """``data_dir/<style>``, drawn now unless a set of ``count`` images with that seed is already there."""
    out = data_dir / style.name
    manifest = read_manifest(out)
    if manifest and manifest.get("count") == count and manifest.get("seed") == seed:
        return out
    if out.exists():
        print(f"redrawing {out} ({manifest and manifest.get('count')} images there, {count} wanted)", flush=True)
        shutil.rmtree(out)
    ensure_venv(style)
    command = draw_command(style, out, count, seed)
    print(f"   {shlex.join(command)}", flush=True)
    # a fixed hash seed: some generators draw from tuple(set(characters)), whose order it decides
    subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unseen.sets", description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="", help=f"comma-separated (default: all): {','.join(STYLES)}")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"images per set (default: {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of every set (default: {DEFAULT_SEED})")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="where the sets go (default: benchmarks/data/unseen)")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.styles.split(",") if s.strip()] or list(STYLES)
    unknown = [n for n in names if n not in STYLES]
    if unknown:
        parser.error(f"unknown style(s): {', '.join(unknown)}; choose from {', '.join(STYLES)}")
    failed = []
    for name in names:
        try:
            ensure_set(STYLES[name], args.data_dir.resolve(), args.count, args.seed)
        except subprocess.CalledProcessError as exc:
            print(f"error: {name}: {shlex.join(map(str, exc.cmd))} exited with {exc.returncode}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"not drawn: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"{len(names)} set(s) in {args.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
