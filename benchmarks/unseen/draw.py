"""Draw one held-out set: COUNT images ``{index}-{label}.png`` and a ``manifest.json`` beside them.

Run it with the Python of the style's own venv (``python -m benchmarks.unseen.sets`` does, making
the venv first); it needs only the standard library, Pillow and the generator package:

    .venv-unseen-wheezy/bin/python -m benchmarks.unseen.draw wheezy benchmarks/data/unseen/wheezy --count 500

The folder appears whole or not at all (written to a temporary folder, then renamed). Both the
labels we choose and the global ``random`` the generators draw from are seeded, and ``sets.py``
fixes ``PYTHONHASHSEED`` (flask-simple-captcha picks from a set of characters), so every set is
drawn the same on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from .styles import STYLES

MANIFEST = "manifest.json"
FORBIDDEN_IN_LABEL = set('/\\:*?"<>|') | {" "}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def draw_set(style_name: str, out: Path, count: int, seed: int, command: str) -> dict:
    """Write ``count`` images of ``style_name`` into ``out`` (which must not exist) and return the manifest."""
    style = STYLES[style_name]
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it first")
    random.seed(f"{seed}:{style_name}")  # each style its own sequence, the same on every run
    rng = random.Random(f"{seed}:{style_name}:labels")
    draw = style.make()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    sizes: set[tuple[int, int]] = set()
    lengths: set[int] = set()
    characters: set[str] = set()
    try:
        for index in range(1, count + 1):
            label, image = draw(rng)
            bad = set(label) & FORBIDDEN_IN_LABEL
            if not label or bad:
                raise ValueError(f"{style_name}: image {index} has label {label!r}, which cannot be a file name")
            image.save(tmp / f"{index}-{label}.png")
            sizes.add(image.size)
            lengths.add(len(label))
            characters.update(label)
        manifest = {
            "style": style.name,
            "generator": style.package,
            "version": _version(style.package),
            "options": style.options,
            "note": style.note,
            "count": count,
            "seed": seed,
            "image_sizes": sorted([list(s) for s in sizes]),
            "alphabet": style.alphabet,
            "characters_seen": "".join(sorted(characters)),
            "lengths": [min(lengths), max(lengths)],
            "fonts": list(style.fonts),
            "debian_font_packages": list(style.system_packages),
            "pillow": _version("pillow") or _version("Pillow"),
            "python": platform.python_version(),
            "requirements": list(style.requirements),
            "command": command,
            "held_out": "drawn by another package: a test set only, never training data",
        }
        unexpected = set(manifest["characters_seen"]) - set(style.alphabet)
        if unexpected:
            raise ValueError(f"{style_name}: labels hold {''.join(sorted(unexpected))!r}, outside the declared "
                             f"alphabet {style.alphabet!r}")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.unseen.draw", description=__doc__.splitlines()[0])
    parser.add_argument("style", choices=sorted(STYLES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    command = f"python -m benchmarks.unseen.draw {args.style} {args.out} --count {args.count} --seed {args.seed}"
    try:
        manifest = draw_set(args.style, args.out, args.count, args.seed, command)
    except (FileExistsError, FileNotFoundError, ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.count} {manifest['generator']} {manifest['version']} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
