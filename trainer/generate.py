"""Write synthetic captcha sets to disk as ``{index}-{label}.png``, in parallel and atomically."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL.Image import Image
from tqdm import tqdm

from scrapy_captcha.codec import SEED_ALPHABET

from .render import Drawer, TextSpec, build_drawer

CHUNK = 250


@dataclass(frozen=True)
class GeneratorSpec:
    """What to draw: the renderer mix (``style``), texts, sizes and fonts, and the difficulty.

    ``style`` is a family (``0.7``, ``0.5``, ``plain``, ``styled``, ``arithmetic``, ``plugin``), a
    named mix (``mixed``: both library styles; ``generalist``) or ``family:weight,...``; see
    :mod:`trainer.render`. ``width``/``height``/``fonts``/``font_sizes`` are the library styles'
    (their own font files and sizes); ``font_dirs`` adds fonts for our renderers; ``generator`` is
    the ``plugin`` family's ``module:function`` (``--generator``).
    """

    width: int = 160
    height: int = 60
    alphabet: str = SEED_ALPHABET
    lengths: tuple[int, int] = (4, 4)
    fonts: tuple[str, ...] = ()
    font_sizes: tuple[int, ...] = ()
    style: str = "0.7"
    font_dirs: tuple[str, ...] = ()
    plugin: str | None = None  # the plugin family's module:function (--generator)
    difficulty: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be between 0 and 1, not {self.difficulty}")
        if "/" in self.alphabet or "\\" in self.alphabet:
            raise ValueError(f"alphabet {self.alphabet!r} has a path separator, which a label in a file name cannot hold")

    def drawer(self, style: str | None = None, difficulty: float | None = None) -> Drawer:
        """A :class:`~trainer.render.Drawer` for this spec (or for another ``style``/``difficulty``)."""
        return build_drawer(style or self.style, TextSpec(self.alphabet, self.lengths), self.font_dirs, self.plugin,
                            self.difficulty if difficulty is None else difficulty, self.width, self.height, self.fonts,
                            self.font_sizes)

    def generator(self, rng: random.Random) -> "BoundDrawer":
        """The drawer bound to ``rng``: ``draw()`` gives ``(image, label)``."""
        return BoundDrawer(self.drawer(), rng)


@dataclass
class BoundDrawer:
    """A drawer and its random source."""

    drawer: Drawer
    rng: random.Random

    def draw(self) -> tuple[Image, str]:
        return self.drawer.draw(self.rng)

    def generate_image(self, text: str) -> Image:
        return self.drawer.generate_image(text, self.rng)


def result_label(label: str) -> str:
    """An arithmetic captcha's answer, the label of ``--result-labels`` sets."""
    from scrapy_captcha.arithmetic import solve_expression

    result = solve_expression(label, force=True)
    if result is None:
        raise ValueError(f"--result-labels: {label!r} is not an arithmetic expression (draw with --style arithmetic)")
    return result


def _write_chunk(args: tuple[GeneratorSpec, Path, int, int, int, bool]) -> int:
    spec, folder, start, count, seed, results = args
    generator = spec.generator(random.Random(seed))
    for index in range(start, start + count):
        image, label = generator.draw()
        image.save(folder / f"{index}-{result_label(label) if results else label}.png")
    return count


@contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ctrl-C is the parent's to handle (it stops the pool and removes the partial folder): worker
    processes started in this block inherit an ignored SIGINT, even while they are still importing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def generate_dataset(
    out: str | Path,
    count: int,
    spec: GeneratorSpec = GeneratorSpec(),
    workers: int | None = None,
    seed: int | None = None,
    force: bool = False,
    progress: bool = True,
    result_labels: bool = False,
) -> Path:
    """Generate ``count`` images into ``out``.

    Images are written to a hidden folder beside ``out`` and moved into place only when all are
    done, so an interrupted run leaves nothing behind. ``force`` replaces an existing folder.
    With ``result_labels`` (arithmetic captchas) a file is named by the expression's result, not its text.
    Labels are repeatable from ``seed``, and so are our renderers' images; the ``captcha`` library's
    are not (captcha 0.7.1 draws from ``secrets``).
    """
    out = Path(out)
    if count < 1:
        raise ValueError("count must be at least 1")
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty; pass force=True (--force) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    seed = random.randrange(2**32) if seed is None else seed
    workers = workers or os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    tasks = [(spec, tmp, start + 1, min(CHUNK, count - start), seed * 1_000_003 + start, result_labels)
             for start in range(0, count, CHUNK)]
    try:
        with tqdm(total=count, unit="img", desc=f"generate {out.name}", disable=not progress) as bar:
            if workers == 1:
                for task in tasks:
                    bar.update(_write_chunk(task))
            else:
                with _interrupts_ignored():
                    pool = multiprocessing.get_context("spawn").Pool(workers)
                with pool:
                    for done in pool.imap_unordered(_write_chunk, tasks):
                        bar.update(done)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def write_preview(path: str | Path, spec: GeneratorSpec, per_row: int = 6, seed: int = 0) -> Path:
    """A contact sheet of ``spec``'s mix: a row per family at the spec's difficulty; the styled
    families again at a quarter of it (the start of a curriculum)."""
    from .render import parse_mix
    from .render.preview import write_preview as draw_sheet

    drawer, easy = spec.drawer(), spec.drawer(difficulty=spec.difficulty / 4)
    families = [name for name, weight in parse_mix(spec.style).items() if weight > 0]
    rows = [(f"{name} (d={spec.difficulty:g})", drawer.only(name)) for name in families]
    rows += [(f"{name} (d={spec.difficulty / 4:g})", easy.only(name)) for name in families if name in ("styled", "arithmetic")]
    return draw_sheet(path, rows, per_row, seed)

