"""Training data: labelled image folders, an endless synthetic stream, and batching."""

from __future__ import annotations

import random
import re
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from scrapy_captcha.codec import Codec, LabelError
from scrapy_captcha.image import pad_tensor_batch, to_tensor
from scrapy_captcha.model import ModelConfig

from .generate import GeneratorSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
LABELS_FILE = "labels.tsv"
_NAME_PATTERNS = (
    re.compile(r"^\d+-(?P<label>.+)$"),  # the seed's {index}-{label}.png
    re.compile(r"^(?P<label>[^_]+)_.*$"),  # {label}_{anything}.ext
)

Transform = Callable[[torch.Tensor], torch.Tensor]


class DataError(ValueError):
    """Files that cannot be used for training, each named with the reason."""

    def __init__(self, problems: list[tuple[Path, str]]):
        self.problems = problems
        shown = "\n".join(f"  {path}: {reason}" for path, reason in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} unusable file(s):\n{shown}{more}")


def label_from_name(path: Path) -> str | None:
    """The label in a file name (``12-Ab3x.png`` or ``Ab3x_whatever.png``), or None."""
    for pattern in _NAME_PATTERNS:
        match = pattern.match(path.stem)
        if match:
            return match.group("label")
    return None


def _read_labels_file(folder: Path) -> dict[str, str] | None:
    labels_path = folder / LABELS_FILE
    if not labels_path.exists():
        return None
    labels = {}
    for number, line in enumerate(labels_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, label = line.partition("\t")
        if not sep:
            raise DataError([(labels_path, f"line {number} is not 'file<TAB>label'")])
        labels[name] = label
    return labels


def scan_folder(folder: str | Path, codec: Codec, max_length: int, allow_skip: bool = False,
                exact_length: bool = False) -> list[tuple[Path, str]]:
    """Find labelled images in ``folder``.

    Every file that is not an image, or whose label is missing or outside the alphabet, is
    reported; with ``exact_length`` (the seed's fixed-length head) so is every label shorter than
    ``max_length``. With ``allow_skip`` those files are left out (and listed in a warning);
    otherwise a :class:`DataError` names them all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError([(folder, "is not a folder")])
    listed = _read_labels_file(folder)
    samples, problems, seen = [], [], set()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == LABELS_FILE or path.is_dir():
            continue
        seen.add(path.name)
        label = listed.get(path.name) if listed is not None else label_from_name(path)
        if label is None:
            where = f"not listed in {LABELS_FILE}" if listed is not None else "no label in the file name"
            problems.append((path, where))
            continue
        try:
            codec.check(label, max_length)
            if exact_length and len(label) != max_length:
                raise LabelError(f"label {label!r} is not {max_length} characters long (this model reads fixed-length text)")
            with Image.open(path) as image:
                image.size  # the header is read; a full decode happens in training
        except LabelError as exc:
            problems.append((path, str(exc)))
            continue
        except (UnidentifiedImageError, OSError) as exc:
            problems.append((path, f"not an image ({exc.__class__.__name__})"))
            continue
        samples.append((path, label))
    if listed is not None:
        problems += [(folder / name, f"listed in {LABELS_FILE} but not found") for name in sorted(set(listed) - seen)]
    if problems and not allow_skip:
        raise DataError(problems)
    if problems:
        warnings.warn(str(DataError(problems)).replace("unusable", "skipped"), stacklevel=2)
    if not samples:
        raise DataError([(folder, "holds no labelled images")])
    return samples


class LabelledFolder(Dataset):
    """Images and labels from a folder (see :func:`scan_folder`)."""

    def __init__(self, samples: list[tuple[Path, str]], config: ModelConfig, transform: Transform | None = None):
        self.samples = samples
        self.config = config
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        path, label = self.samples[index]
        try:
            image = to_tensor(path.read_bytes(), self.config)
        except Exception as exc:
            raise DataError([(path, str(exc))]) from exc
        if self.transform is not None:
            image = self.transform(image)
        return image, label


@dataclass(frozen=True)
class Curriculum:
    """Difficulty from ``start`` up to 1 over the first ``ramp`` share of training, then 1.

    Progress is measured as :func:`trainer.train.training_progress` measures it (images drawn over
    the run's total, or time spent over ``--max-minutes``, whichever is further), from inside each
    loader process: images are counted per process and multiplied by the number of processes.
    """

    start: float = 0.2
    ramp: float = 0.5
    total_images: int = 1
    max_seconds: float | None = None
    started_at: float = 0.0  # wall-clock time the run started (earlier than now on --resume)
    images_before: int = 0  # images drawn before a --resume

    def __post_init__(self) -> None:
        if not (0.0 <= self.start <= 1.0 and 0.0 < self.ramp <= 1.0):
            raise ValueError(f"curriculum: start must be in [0, 1] and ramp in (0, 1], not {self.start}, {self.ramp}")

    def difficulty(self, images_drawn: int) -> float:
        progress = (self.images_before + images_drawn) / max(1, self.total_images)
        if self.max_seconds:
            progress = max(progress, (time.time() - self.started_at) / self.max_seconds)
        return self.start + (1.0 - self.start) * min(1.0, progress / self.ramp)


# Stands in for the batch size in a pool's size (pool_batches of it) when a stream has none of its own:
# only direct use, the trainer always passes one.
UNBATCHED_RUN = 64


class SyntheticStream(IterableDataset):
    """An endless stream of freshly drawn captchas.

    With ``batch_size``, images come in runs of ``batch_size`` of similar width (a pool of a few
    batches is drawn, sorted by width and cut into runs, in random order), so that the batches a
    loader makes of them hold little padding.

    With ``echo`` above 1, each drawn image is used ``echo`` times, in ``echo`` successive pools (so
    never twice in one batch), each time with a fresh augmentation ("data echoing", Choi et al.
    2019): on a few CPU cores drawing the images competes with training on them, so this trains on
    more images per minute. With ``echo`` 1 no image is ever seen twice.
    """

    def __init__(self, spec: GeneratorSpec, config: ModelConfig, seed: int, transform: Transform | None = None,
                 curriculum: Curriculum | None = None, batch_size: int | None = None, pool_batches: int = 4,
                 echo: int = 1):
        if echo < 1:
            raise ValueError(f"echo must be at least 1, not {echo}")
        self.spec = spec
        self.config = config
        self.seed = seed
        self.transform = transform
        self.curriculum = curriculum
        self.batch_size = batch_size
        self.pool_batches = pool_batches
        self.echo = echo

    def _drawn(self) -> Iterator[tuple[torch.Tensor, str]]:
        worker = get_worker_info()
        processes = worker.num_workers if worker else 1
        rng = random.Random(self.seed * 7919 + (worker.id if worker else 0))
        drawer = self.spec.drawer()
        drawn = 0
        while True:
            if self.curriculum is not None:  # the curriculum counts the images trained on, echoes included
                drawer.difficulty = self.curriculum.difficulty(drawn * processes * self.echo)
            image, label = drawer.draw(rng)
            drawn += 1
            yield to_tensor(image, self.config), label

    def _augmented(self, item: tuple[torch.Tensor, str]) -> tuple[torch.Tensor, str]:
        tensor, label = item
        return (tensor if self.transform is None else self.transform(tensor)), label

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        items = self._drawn()
        batched = bool(self.batch_size) and self.config.resize == "height"
        if not batched and self.echo == 1:
            yield from map(self._augmented, items)
            return
        order = random.Random(self.seed)
        fresh_per_pool = (self.batch_size or UNBATCHED_RUN) * self.pool_batches
        earlier: deque[list[tuple[torch.Tensor, str]]] = deque(maxlen=self.echo - 1)
        while True:
            fresh = [next(items) for _ in range(fresh_per_pool)]
            pool = [self._augmented(item) for item in fresh + [item for old in earlier for item in old]]
            if self.echo > 1:
                earlier.append(fresh)
            if not batched:
                order.shuffle(pool)
                yield from pool
                continue
            pool.sort(key=lambda item: item[0].shape[-1])
            runs = [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            order.shuffle(runs)
            for run in runs:
                yield from run


def synthetic_samples(spec: GeneratorSpec, config: ModelConfig, count: int, seed: int) -> list[tuple[torch.Tensor, str]]:
    """A fixed in-memory set of ``count`` synthetic images (for validation without a folder)."""
    stream = iter(SyntheticStream(spec, config, seed))
    samples = [next(stream) for _ in range(count)]
    if config.resize == "height":  # similar widths together: validation batches hold little padding
        samples.sort(key=lambda item: item[0].shape[-1])
    return samples


@dataclass
class Batch:
    images: torch.Tensor
    labels: list[str]
    targets: torch.Tensor  # CTC: concatenated class indices; one-hot: (N, length * classes)
    target_lengths: torch.Tensor


class Collate:
    """Stacks images and encodes labels for the model's head."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self.codec = Codec(config.alphabet)

    def __call__(self, items: list[tuple[torch.Tensor, str]]) -> Batch:
        images = pad_tensor_batch([image for image, _ in items])  # mixed widths ("height" mode): white on the right
        labels = [label for _, label in items]
        lengths = torch.tensor([len(label) for label in labels])
        if self.config.head == "one-hot":
            targets = torch.stack([self.codec.one_hot_encode(label, self.config.max_length) for label in labels])
        else:
            # an empty label (the junk family's) is a CTC target of blanks only
            targets = torch.tensor([k for label in labels if label for k in self.codec.encode(label)], dtype=torch.long)
        return Batch(images, labels, targets, lengths)
