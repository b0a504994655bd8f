"""Recognition: every contender reads the same fixed seed-style test set.

The set is drawn once by the trainer's generator in captcha 0.7.1's style (160x60, 4 characters
from the seed's alphabet) and saved with the seed's ``{index}-{label}.png`` names, so anyone can
reuse it; later runs read the same files.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from trainer.data import label_from_name
from trainer.metrics import confusions, score

from .contenders import Contender
from .machine import shell


@dataclass
class TestSet:
    folder: Path
    images: list[bytes]
    labels: list[str]
    command: str
    generated: bool  # drawn by this run (False: reused from an earlier run)


def generate_command(folder: Path, count: int, seed: int) -> list[str]:
    workers = ["--workers", "1"] if count <= 100 else []  # small sets: starting worker processes costs more than it saves
    return [sys.executable, "-m", "trainer", "generate", str(folder), "--count", str(count), "--seed", str(seed),
            "--style", "0.7", "--length", "4", "--width", "160", "--height", "60", *workers]


def ensure_test_set(folder: Path, count: int, seed: int) -> TestSet:
    """Read the test set in ``folder``, drawing it first if the folder is missing or empty."""
    command = generate_command(folder, count, seed)
    generated = not (folder.is_dir() and any(folder.glob("*.png")))
    if generated:
        from trainer.cli import main as trainer_main

        if trainer_main(command[3:]) != 0:
            raise RuntimeError(f"could not generate the test set: {' '.join(command)}")
    images, labels = read_labelled_folder(folder)
    return TestSet(folder, images, labels, shell(command), generated)


def read_labelled_folder(folder: Path) -> tuple[list[bytes], list[str]]:
    """The images of a ``{index}-{label}.png`` folder in index order, and their labels."""
    files = sorted(folder.glob("*.png"), key=lambda p: int(p.stem.split("-", 1)[0]) if p.stem.split("-", 1)[0].isdigit() else 0)
    images, labels = [], []
    for path in files:
        label = label_from_name(path)
        if label is None:
            raise ValueError(f"{path}: file name does not hold a label ({{index}}-{{label}}.png)")
        images.append(path.read_bytes())
        labels.append(label)
    return images, labels


def _in_batches(solve_batch: Callable[[Sequence[bytes]], list[str]], images: Sequence[bytes], size: int) -> list[str]:
    return [text for start in range(0, len(images), size) for text in solve_batch(images[start:start + size])]


def recognise(contender: Contender, test: TestSet, batch_size: int = 64) -> dict[str, Any]:
    """Accuracy figures of ``contender`` on ``test`` (both cases, per character) and the confusions."""
    began = time.perf_counter()
    predicted = _in_batches(contender.solve_batch, test.images, batch_size)
    seconds = time.perf_counter() - began
    result: dict[str, Any] = score(predicted, test.labels)
    result["confusions"] = [{"true": t, "predicted": p, "count": n} for t, p, n in confusions(predicted, test.labels, top=5)]
    result["length_mismatches"] = sum(len(p) != len(t) for p, t in zip(predicted, test.labels))
    result["seconds"] = seconds
    result["examples"] = [{"true": t, "predicted": p} for p, t in zip(predicted, test.labels) if p != t][:5]
    if hasattr(contender, "solve_batch_lower"):  # scrapy-captcha's models: also as set up for an any-case site
        lower = _in_batches(contender.solve_batch_lower, test.images, batch_size)
        result["any_case_lower_setting"] = sum(p == t.lower() for p, t in zip(lower, test.labels)) / max(1, len(test.labels))
    return result
