"""``python -m benchmarks.view_rules``: how an unsure model's other views should decide its answer.

Every image of each labelled set is read once as given and once in each view (the five of
:data:`scrapy_captcha.views.VIEWS`, and with ``--more-views`` nine more); the rules are then scored
on those same readings, so they differ only in how they choose:

- ``first``: the reading of the image as given (no views);
- ``most-confident``: under the threshold, the most confident of the readings;
- ``whole-vote``: under the threshold, :func:`scrapy_captcha.views.whole_reading_vote` (whole readings vote);
- ``vote``: under the threshold, :func:`scrapy_captcha.views.agreed_reading` (what the solver does: the
  readings vote character by character).

What each view is worth: the vote at 0.8 is also scored without each one of :data:`VIEWS` in turn.

Choose on our own sets (``data/generalist-test``; ``--draw-own FOLDER`` also draws 600 images of our
plain family struck through by thin lines, arcs or curves in the text's colour, ``struck-through``);
the unseen sets only report what a choice does
(README, "The bundled route"). Writes ``benchmarks/view_rules.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image, ImageFilter, ImageOps

from scrapy_captcha import Solver
from scrapy_captcha.codec import Prediction
from scrapy_captcha.image import _flatten, load_image
from scrapy_captcha.views import VIEWS, _stretched, agreed_reading, whole_reading_vote

from .machine import describe, shown_path
from .recognition import read_labelled_folder

OUT = Path(__file__).parent / "view_rules.json"
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 1.01)


#: Views tried beside :data:`VIEWS` that did not earn a place (README, "The bundled route").
MORE_VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "wider-1.5": _stretched(1.5), "narrower-0.65": _stretched(0.65),
    "twice": lambda image: image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC),
    "blurred": lambda image: image.filter(ImageFilter.GaussianBlur(0.8)),
    "median": lambda image: image.filter(ImageFilter.MedianFilter(3)),
    "thickened": lambda image: image.filter(ImageFilter.MinFilter(3)),
    "thinned": lambda image: image.filter(ImageFilter.MaxFilter(3)),
    "autocontrast": lambda image: ImageOps.autocontrast(image, cutoff=1),
    "grey": lambda image: ImageOps.grayscale(image).convert("RGB"),
}

RULES: dict[str, Callable[[Sequence[Prediction]], Prediction]] = {
    "most-confident": lambda readings: max(readings, key=lambda reading: reading.confidence),
    "whole-vote": whole_reading_vote,
    "vote": agreed_reading,
}


def draw_once(folder: Path, name: str, count: int, draw: Callable[[int], tuple[Image.Image, str]]) -> Path:
    """``folder/name`` as ``count`` images ``draw(index)`` makes (``{index}-{label}.png``), drawn once: an
    existing folder is kept, and a new one appears only whole (drawn under a hidden name, then renamed)."""
    path = folder / name
    if path.is_dir():
        return path
    partial = folder / f".{name}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
        image, label = draw(index)
        image.save(partial / f"{index}-{label}.png")
    partial.rename(path)
    return path


def draw_struck_through(folder: Path, count: int = 600, seed: int = 404) -> Path:
    """Our plain family (clean text, one font) with one or two thin lines, arcs or curves in the ink's colour
    drawn through it, 4 to 8 characters of the generalist's alphabet; drawn once (:func:`draw_once`)."""
    import random

    import numpy as np

    from scrapy_captcha.image import border_median
    from trainer.render import TextSpec, build_drawer
    from trainer.render.base import GENERALIST_ALPHABET
    from trainer.render.clutter import arcs, curves, lines

    rng, drawer = random.Random(seed), build_drawer("plain", TextSpec(GENERALIST_ALPHABET, (4, 8)))

    def draw(index: int) -> tuple[Image.Image, str]:
        image, label = drawer.draw(rng)
        image = image.convert("RGB")
        pixels = np.asarray(image).astype(int)
        distance = np.abs(pixels - border_median(pixels)).max(axis=2)
        ink = tuple(int(value) for value in pixels[np.unravel_index(distance.argmax(), distance.shape)])
        for _ in range(rng.randint(1, 2)):
            rng.choice((lines, arcs, curves))(image, rng, 0.5, lambda: ink)
        return image, label

    return draw_once(folder, "struck-through", count, draw)


def read_views(solver: Solver, folder: Path, views: dict[str, Callable]) -> list[tuple[str, list[Prediction]]]:
    """Each image's label and readings: the image as given first, then each view in order."""
    rows = []
    for data, label in zip(*read_labelled_folder(folder)):
        image = _flatten(load_image(data), "RGB")
        rows.append((label, [solver.solve(view) for view in [image, *(view(image) for view in views.values())]]))
    return rows


def score(rows: list[tuple[str, list[Prediction]]], rule: str, threshold: float, views: int,
          without: int | None = None) -> dict[str, float]:
    """Accuracy both ways when ``rule`` decides readings under ``threshold`` from the first ``views`` views
    (leaving out view number ``without``, counting from 1, if given)."""
    exact = any_case = 0
    for label, readings in rows:
        answer = readings[0]
        if rule != "first" and answer.confidence < threshold:
            answer = RULES[rule]([reading for index, reading in enumerate(readings[:1 + views]) if index != without])
        exact += answer.text == label
        any_case += answer.text.lower() == label.lower()
    return {"case_sensitive": round(exact / len(rows), 4), "any_case": round(any_case / len(rows), 4)}


def measure(solver: Solver, folder: Path, more_views: bool) -> dict[str, Any]:
    views = {**VIEWS, **(MORE_VIEWS if more_views else {})}
    rows = read_views(solver, folder, views)
    result: dict[str, Any] = {"images": len(rows), "first": score(rows, "first", 0, 0)}
    for rule in RULES:
        result[rule] = {f"{threshold:g}": score(rows, rule, threshold, len(VIEWS)) for threshold in THRESHOLDS}
        if more_views:
            result[f"{rule}, {len(views)} views"] = score(rows, rule, 0.8, len(views))
    result["vote without"] = {name: score(rows, "vote", 0.8, len(VIEWS), without=index)
                              for index, name in enumerate(VIEWS, start=1)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.view_rules", description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", type=Path, help="labelled folders ({index}-{label}.png)")
    parser.add_argument("--weights", default="generalist", help="one model's weights (default: the bundled generalist)")
    parser.add_argument("--more-views", action="store_true", help=f"also score all {len(VIEWS) + len(MORE_VIEWS)} views at 0.8")
    parser.add_argument("--draw-own", type=Path, metavar="FOLDER",
                        help="first draw our struck-through set under FOLDER and measure it too")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.draw_own:
        args.data.insert(0, draw_struck_through(args.draw_own))
    solver = Solver.from_path(args.weights, backend="onnx")
    results = {"command": "python -m benchmarks.view_rules " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": describe(), "weights": shown_path(solver.backend.path), "sets": {}}
    for folder in args.data:
        result = results["sets"][shown_path(folder)] = measure(solver, folder, args.more_views)
        vote, confident = result["vote"]["0.8"], result["most-confident"]["0.8"]
        print(f"{folder}: first {result['first']['case_sensitive']:.1%} / {result['first']['any_case']:.1%}, "
              f"most confident {confident['case_sensitive']:.1%} / {confident['any_case']:.1%}, "
              f"vote {vote['case_sensitive']:.1%} / {vote['any_case']:.1%} (cs / any case, views under 0.8); vote without "
              + ", ".join(f"{name} {left['any_case']:.1%}" for name, left in result["vote without"].items()), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
