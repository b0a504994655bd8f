"""Score contenders on the held-out sets: per style, both cases and per character, side by side.

Every contender reads the same files through its own path (the bundled model and any ``--weights``
through :class:`scrapy_captcha.Solver`, ddddocr through its ``classification``). A label with
characters a model cannot produce stays in the set and counts as a miss; how many such labels a
set has for each model is recorded beside its scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..contenders import Contender, TorchContender
from ..machine import shown_path
from ..recognition import TestSet, read_labelled_folder, recognise
from .draw import MANIFEST
from .sets import DEFAULT_SEED, ensure_set, read_manifest
from .styles import STYLES

SET_COMMAND = "python -m benchmarks.unseen.sets"


def read_set(folder: Path) -> tuple[TestSet, dict[str, Any]]:
    """The images, labels and manifest of one drawn set."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise ValueError(f"{folder}: no readable {MANIFEST}; draw it with {SET_COMMAND}")
    images, labels = read_labelled_folder(folder)
    if len(images) != manifest.get("count"):
        raise ValueError(f"{folder}: {len(images)} images, but its manifest says {manifest.get('count')}; delete the folder "
                         f"and run {SET_COMMAND}")
    return TestSet(folder, images, labels, manifest.get("command", ""), generated=False), manifest


def outside_alphabet(contender: Contender, labels: Iterable[str]) -> int | None:
    """How many labels hold a character ``contender`` cannot produce (None: its alphabet is not known)."""
    if not isinstance(contender, TorchContender):
        return None
    alphabet = set(contender.solver.config.alphabet)
    return sum(not set(label) <= alphabet for label in labels)


def measure(contenders: dict[str, Contender], data_dir: Path, styles: list[str], count: int,
            seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Draw any missing set, then score every contender on every style."""
    out: dict[str, Any] = {
        "count": count, "seed": seed, "data_dir": shown_path(data_dir),
        "make_command": f"{SET_COMMAND} --count {count} --seed {seed}",
        "models": {key: {"label": c.label, "arch": c.arch, "file": str(c.path)} for key, c in contenders.items()},
        "styles": {},
    }
    for name in styles:
        folder = ensure_set(STYLES[name], data_dir, count, seed)
        test, manifest = read_set(folder)
        print(f"   {name}: {len(test.images)} images", flush=True)
        results = {}
        for key, contender in contenders.items():
            result = recognise(contender, test)
            result["labels_outside_alphabet"] = outside_alphabet(contender, test.labels)
            results[key] = result
            print(f"      {key}: {result['sequence_accuracy']:.1%} case-sensitive, "
                  f"{result['sequence_accuracy_case_insensitive']:.1%} any case", flush=True)
        out["styles"][name] = {**{k: manifest.get(k) for k in ("generator", "version", "options", "image_sizes", "alphabet",
                                                                "lengths", "count", "seed", "fonts", "pillow")},
                               "folder": shown_path(folder), "command": _short_command(manifest, count, seed), "results": results}
    return out


def _short_command(manifest: dict[str, Any], count: int, seed: int) -> str:
    return f"{SET_COMMAND} --styles {manifest['style']} --count {count} --seed {seed}"
