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

from tqdm import tqdm

from scrapy_captcha.codec import SEED_ALPHABET

from .synth import SyntheticCaptcha, random_text

CHUNK = 250


@dataclass(frozen=True)
class GeneratorSpec:
    """What to draw: sizes, text, fonts and the library style to imitate."""

    width: int = 160
    height: int = 60
    alphabet: str = SEED_ALPHABET
    lengths: tuple[int, int] = (4, 4)
    fonts: tuple[str, ...] = ()
    font_sizes: tuple[int, ...] = ()
    style: str = "0.7"

    def generator(self, rng: random.Random) -> SyntheticCaptcha:
        return SyntheticCaptcha(self.width, self.height, self.fonts or None, self.font_sizes or None, self.style, rng)


def _write_chunk(args: tuple[GeneratorSpec, Path, int, int, int]) -> int:
    spec, folder, start, count, seed = args
    rng = random.Random(seed)
    generator = spec.generator(rng)
    for index in range(start, start + count):
        text = random_text(rng, spec.alphabet, spec.lengths)
        generator.generate_image(text).save(folder / f"{index}-{text}.png")
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
) -> Path:
    """Generate ``count`` images into ``out``.

    Images are written to a hidden folder beside ``out`` and moved into place only when all are
    done, so an interrupted run leaves nothing behind. ``force`` replaces an existing folder.
    Labels are repeatable from ``seed``; the images are not (captcha 0.7.1 draws from ``secrets``).
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
    tasks = [(spec, tmp, start + 1, min(CHUNK, count - start), seed * 1_000_003 + start) for start in range(0, count, CHUNK)]
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
