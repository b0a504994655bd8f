"""Training cost: the same wall-clock budget for the default recipe and for the seed's network.

Both runs use ``python -m trainer train`` with the bundled model's recipe (synthetic captchas in
both library styles, batch 64, AdamW one-cycle, one data-loading process) and ``--max-minutes``,
which squeezes the whole one-cycle schedule into the budget, so each run ends cooled down. The
seed's network keeps the seed notebook's learning rate (1e-3); the CRNN keeps the recipe's
(3e-3). Validation (on the trainer's fixed synthetic set) runs every ``steps_per_epoch`` steps,
and its time counts against the budget, for both alike.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .machine import REPO, shell

TARGETS = (0.90, 0.95)


@dataclass(frozen=True)
class Recipe:
    key: str
    arch: str
    lr: float
    label: str


RECIPES = (
    Recipe("crnn-budget", "crnn", 3e-3, "default recipe (CRNN)"),
    Recipe("seed-vgg", "seed-vgg", 1e-3, "seed VGG one-hot network"),
)


@dataclass(frozen=True)
class Budget:
    """How long and how big the training runs are."""

    minutes: float = 6.0
    steps_per_epoch: int = 100
    batch_size: int = 64
    val_size: int = 1000
    workers: int = 1


def train_command(recipe: Recipe, out: Path, budget: Budget) -> list[str]:
    return [
        sys.executable, "-m", "trainer", "train", "--out", str(out), "--arch", recipe.arch,
        "--style", "mixed", "--length", "4", "--steps-per-epoch", str(budget.steps_per_epoch),
        "--epochs", "100000", "--max-minutes", f"{budget.minutes:g}", "--lr", f"{recipe.lr:g}", "--warmup", "0.05",
        "--batch-size", str(budget.batch_size), "--val-size", str(budget.val_size), "--workers", str(budget.workers),
        "--seed", "1", "--no-progress",
    ]


def train(recipe: Recipe, out: Path, budget: Budget, timeout_minutes: float) -> dict[str, Any]:
    """Run one training from scratch into ``out`` (emptied first) and summarise its metrics."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    argv = train_command(recipe, out, budget)
    with open(out / "train.log", "w") as log:
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_minutes * 60, cwd=REPO)
    if done.returncode != 0:
        tail = (out / "train.log").read_text()[-2000:]
        raise RuntimeError(f"{shell(argv)} failed ({done.returncode}):\n{tail}")
    return summarise(recipe, out, budget, shell(argv))


def summarise(recipe: Recipe, out: Path, budget: Budget, command: str) -> dict[str, Any]:
    """Minutes to each target accuracy, and the curve, from ``out/metrics.json``."""
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    curve = [{"minutes": h["minutes"], "step": h["step"], "accuracy_case_insensitive": h["sequence_accuracy_case_insensitive"],
              "accuracy": h["sequence_accuracy"]} for h in history]
    best = max(curve, key=lambda point: point["accuracy_case_insensitive"]) if curve else None
    return {
        "label": recipe.label,
        "arch": recipe.arch,
        "lr": recipe.lr,
        "command": command,
        "weights": str(out / "weights.pt"),
        "budget_minutes": budget.minutes,
        "minutes_to": {f"{target:.2f}": minutes_to(curve, target) for target in TARGETS},
        "best_accuracy_case_insensitive": best and best["accuracy_case_insensitive"],
        "best_at_minutes": best and best["minutes"],
        "steps": curve[-1]["step"] if curve else 0,
        "validation_images": budget.val_size,
        "curve": curve,
    }


def minutes_to(curve: list[dict[str, Any]], target: float) -> float | None:
    """Minutes at the first validation with case-insensitive accuracy >= ``target``, or None."""
    for point in curve:
        if point["accuracy_case_insensitive"] >= target:
            return point["minutes"]
    return None


def bundled_history(metrics_path: Path, name: str) -> dict[str, Any] | None:
    """Minutes to each target in the bundled model's own (long) training run, if its metrics file is here."""
    try:
        metrics = json.loads(metrics_path.read_text())
        curve = [{"minutes": h["minutes"], "step": h["step"], "accuracy_case_insensitive": h["sequence_accuracy_case_insensitive"],
                  "accuracy": h["sequence_accuracy"]} for h in metrics["history"]]
        config = metrics.get("config", {})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {
        "source": name,
        "budget_minutes": config.get("max_minutes"),
        "steps_per_epoch": config.get("steps_per_epoch"),
        "minutes_to": {f"{target:.2f}": minutes_to(curve, target) for target in TARGETS},
        "best_accuracy_case_insensitive": max((p["accuracy_case_insensitive"] for p in curve), default=None),
        "total_minutes": curve[-1]["minutes"] if curve else None,
    }
