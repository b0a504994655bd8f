"""Where and when a figure was measured: CPU, cores, library versions, commit and date."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def shown_path(path: str | Path) -> str:
    """``path`` relative to the repository when inside it, so results read the same on every checkout."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's best guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def describe() -> dict[str, Any]:
    """A dictionary that identifies this machine and software for results.json."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpu_used": False,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "scrapy": version("scrapy"),
        "captcha": version("captcha"),
        "ddddocr": version("ddddocr"),
        "onnxruntime": version("onnxruntime"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def shell(command: list[str]) -> str:
    """A command as a user would type it: ``python`` for this interpreter, paths relative to here."""
    import shlex
    import sys

    cwd = Path.cwd()
    words = []
    for word in command:
        if word == sys.executable:
            word = "python"
        elif word.startswith("/"):
            try:
                word = str(Path(word).relative_to(cwd))
            except ValueError:
                pass
        words.append(shlex.quote(word))
    return " ".join(words)
