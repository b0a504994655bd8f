"""A small real Django site guarded by django-simple-captcha 0.7.0: a third-party captcha package
served the way Django sites serve it, for the adapt benchmarks and the tests.

The site (``settings.py``, ``urls.py``, ``views.py``, ``templates/``) is a catalogue shaped like
the demo shop (so the example project's ``catalog`` spider crawls it), behind a ``forms.Form`` with
a ``CaptchaField``: the package draws the images at ``/captcha/image/<key>/``, keeps the keys in
SQLite and checks answers case-insensitively. It runs in its own venv (``make django-venv``):
django-simple-captcha's ``captcha`` module would shadow the ``captcha`` package of the main one.

:class:`DjangoSite` starts it in that venv from the main one (this module imports no Django)::

    with DjangoSite(solve_every=1, event_log=True) as site:
        crawl(site.url)
        site.truth()    # sha1 of each image served -> its text
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import shutil
import subprocess
import tempfile

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: The Django venv: the same pins as benchmarks/unseen's django style, so the two share it.
VENV = REPO / ".venv-unseen-django"
REQUIREMENTS = ("django-simple-captcha==0.7.0", "django==5.2.19", "pillow==13.0.0")
PAGE_SIZE = 8  # settings.SHOP_PAGE_SIZE
#: The characters django-simple-captcha's default challenge draws (``captcha.helpers.random_char_challenge``:
#: four of a-z, shown and checked as capitals): what a user sets as ``CAPTCHA_ALPHABET`` for such a site.
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: How many characters that challenge draws (its ``CAPTCHA_LENGTH`` default): ``CAPTCHA_ANSWER_LENGTH`` for such a site.
LENGTH = 4


def venv_python() -> Path:
    """The Django venv's Python; a clear error when it is missing."""
    python = VENV / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: make the Django venv first (make django-venv: "
                                f"{' '.join(REQUIREMENTS)})")
    return python


class DjangoSite:
    """The Django shop in a child process on 127.0.0.1 (a free port), with a fresh SQLite database."""

    def __init__(self, categories: int = 2, items_per_category: int = 24, solve_every: int = 0, event_log: bool = True,
                 start_timeout: float = 60.0):
        self.categories = categories
        self.items_per_category = items_per_category
        self.solve_every = solve_every
        self.event_log = event_log
        self.start_timeout = start_timeout
        self.url = ""
        self._folder: Path | None = None
        self._process: subprocess.Popen | None = None

    def start(self) -> DjangoSite:
        """Start the server (migrations first) and wait for its address; returns self."""
        if self._process is not None:
            raise RuntimeError("DjangoSite is already started")
        python = venv_python()
        self._folder = Path(tempfile.mkdtemp(prefix="django-shop-"))
        command = [str(python), "-m", "example_project.django_site.serve", "--port", "0", "--quiet", "--data", str(self._folder),
                   "--categories", str(self.categories), "--items-per-category", str(self.items_per_category),
                   "--solve-every", str(self.solve_every)]
        if self.event_log:
            command += ["--event-log", str(self._folder / "events.jsonl")]
        # stderr to a file: a pipe nobody reads would block the server once full.
        with open(self._folder / "stderr.log", "wb") as stderr:
            self._process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                             env={**os.environ, "PYTHONPATH": str(REPO)})
        line = self._read_line(self.start_timeout)
        if not line.startswith("serving at "):
            error = self._stop_process()
            self.stop()
            raise RuntimeError(f"the Django site did not start ({line.strip() or 'no output'}): {error[-2000:]}")
        self.url = line.split()[-1]
        return self

    def _read_line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return ""
        return self._process.stdout.readline()

    def _stop_process(self) -> str:
        """Stop the server; returns what it wrote to stderr."""
        process, self._process = self._process, None
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        return (self._folder / "stderr.log").read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system; Linux ``/proc``)."""
        if self._process is None:
            raise RuntimeError("DjangoSite is not started")
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the server and remove its database."""
        if self._process is not None:
            self._stop_process()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> DjangoSite:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def events(self) -> list[dict[str, Any]]:
        """The event log so far: ``{"event": "image", "sha1", "text", "key"}`` and ``{"event": "answer", "correct", ...}``."""
        if self._folder is None or not self.event_log:
            raise RuntimeError("no event log: start the site with event_log=True")
        path = self._folder / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def truth(self) -> dict[str, str]:
        """sha1 of every captcha image served -> its text."""
        return {e["sha1"]: e["text"] for e in self.events() if e["event"] == "image" and e["text"]}

    def answers(self) -> collections.Counter[str]:
        """Answers the site checked: ``right`` and ``wrong``."""
        return collections.Counter("right" if e["correct"] else "wrong" for e in self.events() if e["event"] == "answer")

    def expected_pages(self) -> int:
        """Pages a full crawl sees: home, every listing page, every product."""
        return 1 + self.categories * (-(-self.items_per_category // PAGE_SIZE) + self.items_per_category)

    def expected_items(self) -> int:
        return self.categories * self.items_per_category


