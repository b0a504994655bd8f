"""Recording: every captcha image the middleware reads, with its answer and the site's verdict.

With ``CAPTCHA_HARVEST_DIR`` set the folder fills like this::

    DIR/12-Ab3x.png              accepted answers: `python -m trainer train --data DIR` reads these
    DIR/rejected/13.png          the site rejected the answer (kept in the record)
    DIR/unanswered/14.png        not submitted (confidence under CAPTCHA_MIN_CONFIDENCE) or form refused
    DIR/records/attempts.jsonl   one JSON object per image: file, verdict, answer, reading, confidence, url, time
    DIR/records/labels.tsv       hand labels from `python -m trainer label DIR` ("rejected/13.png<TAB>Ab3x")

Crash safety: an image is written to a hidden temporary file in its folder and then hard-linked
to its final name (``os.link`` never replaces a file, so two processes cannot take one name), and
only then is its record appended to ``attempts.jsonl`` with one ``os.write`` on an ``O_APPEND``
descriptor. The record is the commit point: a process killed at any moment leaves at most a hidden
temporary file (ignored by every reader, removed later) or an image without a record (readers
treat it like any unrecorded file), never a half-written image under a final name nor a half
line in the index (a reader skips a line that does not parse, in case of a power loss). One index
file rather than one JSON per image: a person can browse it with ``jq``, the trainer reads it in
one go, and a single small ``O_APPEND`` write is appended whole on local file systems, whatever
other processes append at the same time.

Several crawl processes may record into one folder: image numbers come from a counter file
updated under an exclusive ``flock``, which also carries the folder's size for
``CAPTCHA_HARVEST_MAX_MB`` (recording stops, with one warning, once the folder reaches it).

The middleware calls :meth:`Recorder.record` in a thread, never in the reactor.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .files import replace_atomically
from .image import load_image

try:
    import fcntl
except ImportError:  # Windows: one process per folder
    fcntl = None  # type: ignore[assignment]

ACCEPTED, REJECTED, NOT_SUBMITTED, FORM_REFUSED = "accepted", "rejected", "not_submitted", "form_refused"
VERDICTS = (ACCEPTED, REJECTED, NOT_SUBMITTED, FORM_REFUSED)
RECORDS_DIR = "records"
ATTEMPTS_FILE = "attempts.jsonl"
HAND_LABELS_FILE = "labels.tsv"
_COUNTER_FILE = "counter"
_TEMP_PREFIX = ".rec-"
_STALE_TEMP_SECONDS = 600
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
logger = logging.getLogger(__name__)
_FOLDERS = {ACCEPTED: "", REJECTED: "rejected", NOT_SUBMITTED: "unanswered", FORM_REFUSED: "unanswered"}


@dataclass(frozen=True)
class Attempt:
    """One recorded captcha image (a line of ``attempts.jsonl``)."""

    file: str  # relative to the recording folder
    verdict: str
    answer: str | None  # what was submitted; None when nothing was
    reading: str  # what the model read
    confidence: float
    url: str
    time: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, separators=(",", ":"))


def usable_as_file_name(answer: str) -> bool:
    """Whether ``answer`` can be the label part of ``{index}-{answer}.png``."""
    return bool(answer) and answer.isprintable() and not any(c in answer for c in '/\\:*?"<>|') and answer not in (".", "..")


class RecordingFull(Exception):
    """The folder reached ``CAPTCHA_HARVEST_MAX_MB``."""


class Recorder:
    """Writes captcha images and their records into one folder (see the module docstring)."""

    def __init__(self, directory: Path, max_bytes: int | None = None):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        records = self.directory / RECORDS_DIR
        for folder in {self.directory / name for name in _FOLDERS.values()} | {records}:
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder)
        self.attempts_path = records / ATTEMPTS_FILE
        self._counter_path = records / _COUNTER_FILE

    def record(self, data: bytes, verdict: str, reading: str, confidence: float, url: str,
               answer: str | None = None) -> Attempt:
        """Store one image and its record atomically; raises :class:`RecordingFull` at the size cap.

        ``answer`` is what was submitted (None for ``not_submitted``); an accepted answer that cannot
        be a file name is stored under ``unanswered/`` with its verdict kept in the record.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; expected one of {VERDICTS}")
        if bytes(data[:8]) != _PNG_SIGNATURE:  # keep every image as PNG, whatever the site served
            buffer = io.BytesIO()
            load_image(data).save(buffer, "PNG")
            data = buffer.getvalue()
        folder = _FOLDERS[verdict]
        if verdict == ACCEPTED and not usable_as_file_name(answer or ""):
            folder = _FOLDERS[NOT_SUBMITTED]
        target_dir = self.directory / folder
        fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=_TEMP_PREFIX, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            with self._lock, _locked(self._counter_path):
                index, used = self._read_counter()
                if self.max_bytes is not None and used + len(data) > self.max_bytes:
                    raise RecordingFull(f"{self.directory} holds {used / 1e6:.1f} MB, the cap is {self.max_bytes / 1e6:.1f} MB")
                while True:
                    name = f"{index}-{answer}.png" if folder == "" else f"{index}.png"
                    try:
                        os.link(tmp, target_dir / name)  # never replaces a file, unlike rename
                        break
                    except FileExistsError:
                        index += 1
                attempt = Attempt(str(Path(folder) / name) if folder else name, verdict, answer, reading, recorded_confidence(confidence),
                                  url, datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
                line = (attempt.to_json() + "\n").encode("utf-8")
                self._write_counter(index + 1, used + len(data) + len(line))
            append_line(self.attempts_path, line)
            return attempt
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _read_counter(self) -> tuple[int, int]:
        try:
            index, used = self._counter_path.read_text().split()
            return int(index), int(used)
        except (FileNotFoundError, ValueError):
            return _count_existing(self.directory)

    def _write_counter(self, index: int, used: int) -> None:
        replace_text(self._counter_path, f"{index} {used}\n")


def recorded_confidence(confidence: float) -> float:
    """A confidence to six decimals, rounded down: a reading kept back for falling under
    ``CAPTCHA_MIN_CONFIDENCE = 1.0`` at 0.9999996 is recorded under 1.0, never at it."""
    return math.floor(confidence * 1_000_000) / 1_000_000


class BackgroundRecorder:
    """Runs :meth:`Recorder.record` calls in a writer thread, in order, so the caller never waits.

    The thread lives while there is work and is not a daemon: the interpreter waits for queued
    records before it exits. :meth:`drain` blocks until everything submitted is written.
    """

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.counts: dict[str, int] = {"recorded": 0, "full": 0, "errors": 0}
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._warned_full = False

    def submit(self, **attempt: Any) -> None:
        """Queue one :meth:`Recorder.record` call (its keyword arguments)."""
        self._queue.put(attempt)
        with self._start_lock:
            if self._thread is None:  # the worker clears it under this lock when it leaves
                self._thread = threading.Thread(target=self._work, name="captcha-recorder", daemon=False)
                self._thread.start()

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every submitted image is written (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def _work(self) -> None:
        while True:
            try:
                attempt = self._queue.get(timeout=1.0)
            except queue.Empty:
                with self._start_lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self.recorder.record(**attempt)
                self.counts["recorded"] += 1
            except RecordingFull as exc:
                self.counts["full"] += 1
                if not self._warned_full:
                    self._warned_full = True
                    logger.warning("Not recording captchas any more: %s (CAPTCHA_HARVEST_MAX_MB)", exc)
            except Exception:
                self.counts["errors"] += 1
                logger.exception("Could not record a captcha image in %s", self.recorder.directory)
            finally:
                self._queue.task_done()


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` with a single ``write`` on an ``O_APPEND`` descriptor (whole, never interleaved)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a full disk; never leave half a line behind another record
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
    finally:
        os.close(fd)


def replace_text(path: Path, text: str) -> None:
    """Replace ``path``'s content atomically (temporary file + rename)."""
    replace_atomically(path, text, prefix=_TEMP_PREFIX)


def read_attempts(directory: str | os.PathLike[str]) -> list[Attempt]:
    """The records of a recording folder whose image exists, oldest first (none if there is no index)."""
    directory = Path(directory)
    path = directory / RECORDS_DIR / ATTEMPTS_FILE
    if not path.exists():
        return []
    attempts = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            fields: dict[str, Any] = json.loads(line)
            attempt = Attempt(**fields)
        except (ValueError, TypeError):
            continue  # a line cut by a power loss
        if (directory / attempt.file).is_file():
            attempts.append(attempt)
    return attempts


def remove_stale_temporaries(folder: Path, older_than: float = _STALE_TEMP_SECONDS) -> None:
    """Remove temporary files left by killed processes (old enough not to be another writer's)."""
    now = time.time()
    for path in folder.glob(f"{_TEMP_PREFIX}*.tmp"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > older_than:
                path.unlink()


def _count_existing(directory: Path) -> tuple[int, int]:
    """Next free index and bytes used, from the files themselves (a folder without a counter yet)."""
    highest, used = -1, 0
    for folder in {directory / name for name in _FOLDERS.values()} | {directory / RECORDS_DIR}:
        for entry in os.scandir(folder):
            if entry.is_file() and not entry.name.startswith("."):
                used += entry.stat().st_size
                number = entry.name.split("-", 1)[0].split(".", 1)[0]
                if number.isdigit():
                    highest = max(highest, int(number))
    return highest + 1, used


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on ``path`` (where the OS has ``flock``)."""
    with open(path.with_suffix(".lock"), "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
