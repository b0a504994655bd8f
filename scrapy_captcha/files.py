"""Writing files so that a crash never leaves a half-written one: a temporary file, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, content: str | bytes, prefix: str | None = None) -> Path:
    """Replace ``path``'s content with ``content`` in one rename; the file is world-readable (0644).

    The temporary file lies beside ``path``, named ``{prefix}...tmp`` (default ``.{name}.``), so a
    reader of the folder can tell it from finished files.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
