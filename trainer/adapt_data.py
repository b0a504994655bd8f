"""What a recording folder offers ``trainer adapt``: labelled and unlabelled images, a held-out split.

Accepted answers, hand labels (``records/labels.tsv``) and ``--labels`` folders are labels; images
without a known answer are unlabelled, each with the answers the site rejected for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from scrapy_captcha.codec import Codec
from scrapy_captcha.image import to_tensor
from scrapy_captcha.model import ModelConfig
from scrapy_captcha.recording import ACCEPTED, REJECTED, read_attempts

from .data import IMAGE_SUFFIXES, DataError, label_from_name, scan_folder
from .label import read_hand_labels

#: Characters a label may bring into the alphabet (anything else is reported as unusable).
GROWABLE = "".join(chr(c) for c in range(33, 127))


@dataclass
class Pool:
    """What a folder offers for adaptation."""

    labelled: list[tuple[Path, str, str]]  # path, label, source ("accepted", "hand", "folder")
    unlabelled: list[tuple[Path, frozenset[str]]]  # path, case-folded answers known to be wrong
    rejected: dict[Path, str] = field(default_factory=dict)  # path -> the answer the site rejected, as submitted


def collect(folder: str | Path, label_folders: list[str] = ()) -> Pool:
    """Sort a recording folder's images into labelled and unlabelled (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError([(folder, "is not a folder")])
    hand = read_hand_labels(folder)
    labelled: list[tuple[Path, str, str]] = []
    unlabelled: list[tuple[Path, frozenset[str]]] = []
    recorded: set[str] = set()
    rejected: dict[Path, str] = {}
    for attempt in read_attempts(folder):
        recorded.add(attempt.file)
        path = folder / attempt.file
        if attempt.file in hand:
            continue
        if attempt.verdict == ACCEPTED and attempt.answer:
            labelled.append((path, attempt.answer, "accepted"))
        else:
            wrong = frozenset({attempt.answer.casefold()}) if attempt.verdict == REJECTED and attempt.answer else frozenset()
            if wrong:
                rejected[path] = attempt.answer
            unlabelled.append((path, wrong))
    for name, label in hand.items():
        if (folder / name).is_file():
            labelled.append((folder / name, label, "hand"))
    # images the index does not know: a plain folder, or a harvest from before recording existed
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")):
        name = str(path.relative_to(folder))
        if name in recorded or name in hand:
            continue
        label = label_from_name(path) if path.parent == folder else None
        if label is not None:
            labelled.append((path, label, "accepted"))
        else:
            unlabelled.append((path, frozenset()))
    for extra in label_folders:
        labelled += [(path, label, "folder") for path, label in scan_folder(extra, Codec(GROWABLE), 64)]
    if not labelled and not unlabelled:
        raise DataError([(folder, "holds no captcha images (is it a CAPTCHA_HARVEST_DIR?)")])
    return Pool(labelled, unlabelled, rejected)  # a missing image is reported when the unlabelled ones load


def load_images(paths: list[Path], config: ModelConfig) -> list[torch.Tensor]:
    """Preprocess images once, kept as uint8 (the augmentations work on floats made from them).

    A list, not one tensor: in "height" mode images of different sizes differ in width; batches
    are padded as the trainer pads them (``pad_tensor_batch``)."""
    images, problems = [], []
    for path in paths:
        try:
            images.append(to_tensor(path.read_bytes(), config).mul_(255).round_().to(torch.uint8))
        except Exception as exc:  # InvalidImageError, OSError
            problems.append((path, str(exc)))
    if problems:
        raise DataError(problems)
    return images


def split(labelled: list[tuple[Path, str, str]], share: float, seed: int) -> tuple[list, list]:
    """Hold out ``share`` of each source's labelled images (at least one of a source with 5 or more)."""
    train, held = [], []
    for source in ("accepted", "hand", "folder"):
        items = sorted(item for item in labelled if item[2] == source)
        random.Random(seed).shuffle(items)
        cut = max(1, round(share * len(items))) if len(items) >= 5 and share > 0 else 0
        held += items[:cut]
        train += items[cut:]
    return train, held


def start_weights(weights: str | Path | None, pool: Pool, sample: int = 200) -> Path:
    """The weights file adapting starts from: ``weights`` itself, or for a route (``"auto"``, the
    middleware's default) the route's model for the style most of the recorded images are in."""
    from scrapy_captcha.routing import RoutedSolver, is_route
    from scrapy_captcha.weights import weights_path

    from scrapy_captcha.image import InvalidImageError, load_image

    path = weights_path(weights)
    if not is_route(path):
        return path
    solver = RoutedSolver.from_route(path, backend="torch")
    images = []
    for file in [item[0] for item in pool.labelled + pool.unlabelled][:sample]:
        try:
            images.append(load_image(file.read_bytes()))
        except (OSError, InvalidImageError):
            continue  # the data checks that follow name each unusable file
    return solver.route.member(solver.pick(images) if images else "otherwise", "torch")
