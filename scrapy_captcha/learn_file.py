"""The learn file's format on disk (``CAPTCHA_LEARN_FILE``): read and checked, written whole, shared under a lock.

A JSON object: ``format`` and ``version``, ``models`` (a digest of the route's model files, or null),
``sites`` (what :meth:`scrapy_captcha.learning.SiteLearning.state` gives) and ``trials`` (what
:meth:`scrapy_captcha.model_trial.ModelTrials.state` gives), both by site (host and port).
:func:`write` renames a temporary file over the old one, so a reader never sees half a file;
:func:`locked` makes a crawl's read-merge-write one step against other crawls sharing the file (on
systems with ``fcntl``; elsewhere two crawls closing at the same moment could each write theirs).
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FORMAT", "NAME_IN_JOBDIR", "VERSION", "LearnFileError", "locked", "read", "write"]

FORMAT, VERSION = "scrapy-captcha-learned-sites", 1
#: The learn file's name in JOBDIR, where ``CAPTCHA_LEARN_FILE`` is not set.
NAME_IN_JOBDIR = "captcha-learned.json"
ABOUT = "What each site's verdicts taught scrapy-captcha (CAPTCHA_LEARN_FILE); delete it to learn again."


class LearnFileError(ValueError):
    """A file that is not a learn file this version reads (the message says what is wrong)."""


def read(path: Path) -> dict[str, Any] | None:
    """The file's data, its ``sites`` and ``trials`` objects checked as such; ``None`` if there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnFileError(f"cannot be read ({exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LearnFileError(f"cannot be read as JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LearnFileError(f'is not a scrapy-captcha learn file (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise LearnFileError(f"has format version {data.get('version')!r}; this scrapy-captcha reads {VERSION}")
    data.setdefault("trials", {})
    if not isinstance(data.get("sites"), dict) or not isinstance(data["trials"], dict):
        raise LearnFileError('holds no "sites" and "trials" objects')
    return data


def write(path: Path, models: str | None, sites: dict[str, Any], trials: dict[str, Any]) -> None:
    """Write the file whole: a temporary file beside it, flushed to disk, renamed over it (``OSError`` if that fails)."""
    data = {"format": FORMAT, "version": VERSION, "about": ABOUT, "models": models, "sites": sites, "trials": trials,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the file's lock (an exclusive ``flock`` on ``.NAME.lock`` beside it) for a read-merge-write."""
    if fcntl is None:
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
