"""Harvesting: save captcha images whose answers a site accepted, as ``{index}-{answer}.png``.

The trainer reads such a folder directly (``python -m trainer train --data DIR``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from .image import load_image

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_HARVESTED = re.compile(r"^(\d+)-")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Harvester:
    """Saves accepted captcha images as ``{index}-{answer}.png``; indexes continue after the highest
    one in the directory, also when several crawls write there at once."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()

    def _first_free_index(self) -> int:
        indexes = [int(m.group(1)) for name in os.listdir(self.directory) if (m := _HARVESTED.match(name))]
        return max(indexes, default=-1) + 1

    def save(self, data: bytes, answer: str) -> Path | None:
        """Write the image atomically; ``None`` if the answer cannot be a file name."""
        if not answer or any(c in answer for c in '/\\:*?"<>|') or not answer.isprintable():
            return None
        if bytes(data[:8]) != _PNG_SIGNATURE:
            buffer = io.BytesIO()
            load_image(data).save(buffer, "PNG")
            data = buffer.getvalue()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".harvest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            with self._lock, _locked(self.directory / ".harvest.lock"):
                index = self._first_free_index()
                while True:
                    target = self.directory / f"{index}-{answer}.png"
                    try:
                        os.link(tmp, target)  # never replaces a file
                        return target
                    except FileExistsError:
                        index += 1
        finally:
            Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (where the OS has ``flock``)."""
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
