"""``python -m benchmarks.narrow_drops``: which characters models drop, narrow ones or others.

Each weights file reads a labelled folder alone (no route, no other views, greedy CTC); a reading
that is its label less one character counts as a drop of that character, narrow (``I i l j J 1 f
t r``, :data:`trainer.render.base.NARROW_CHARACTERS`) or not. Also: accuracy both ways and the
readings too short or too long. It compares, for example, a model with more CTC frames per column
against the same training with one (README, "Narrow characters: a probe"). ``--beam N`` reads each
image's logits twice instead, without answer rules: greedy, and by a CTC prefix beam search of width
N (the most likely text, summed over its alignments), to tell a model's errors from the decoder's.

    python -m benchmarks.narrow_drops --data data/view-rules/narrow-rich --weights generalist runs/a/weights.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainer.metrics import score
from trainer.render.base import NARROW_CHARACTERS as NARROW


def dropped(label: str, reading: str) -> str | None:
    """The character of ``label`` that ``reading`` lacks, if the reading is the label less one character."""
    if len(reading) != len(label) - 1:
        return None
    for index in range(len(label)):
        if label[:index] + label[index + 1:] == reading:
            return label[index]
    return None


def count_drops(labels: Sequence[str], readings: Sequence[str]) -> dict[str, Any]:
    """Accuracy both ways, short and long readings, and single drops of narrow and other characters."""
    drops = [dropped(label, reading) for label, reading in zip(labels, readings)]
    accuracy = score(readings, labels)
    return {
        "images": len(labels),
        "case_sensitive": round(accuracy["sequence_accuracy"], 4),
        "any_case": round(accuracy["sequence_accuracy_case_insensitive"], 4),
        "too_short": sum(len(r) < len(label) for label, r in zip(labels, readings)),
        "too_long": sum(len(r) > len(label) for label, r in zip(labels, readings)),
        "narrow_characters": sum(c in NARROW for label in labels for c in label),
        "other_characters": sum(c not in NARROW for label in labels for c in label),
        "narrow_dropped": sum(d is not None and d in NARROW for d in drops),
        "other_dropped": sum(d is not None and d not in NARROW for d in drops),
    }


def prefix_beam_search(log_probs: np.ndarray, alphabet: str, width: int = 10, floor: float = -7.0) -> str:
    """The text a CTC output ``(T, classes)`` of log-probabilities (class 0 the blank) gives most probability,
    summed over its alignments, as far as a beam of ``width`` prefixes finds it; classes below ``floor`` are skipped."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}  # prefix -> (ends in blank, ends in its last class)
    for row in log_probs:
        grown: dict[tuple[int, ...], list[float]] = {}

        def add(prefix: tuple[int, ...], slot: int, value: float) -> None:
            entry = grown.setdefault(prefix, [-np.inf, -np.inf])
            entry[slot] = np.logaddexp(entry[slot], value)

        for prefix, (blank, last) in beams.items():
            total = np.logaddexp(blank, last)
            for cls in np.nonzero(row > floor)[0].tolist():
                p = float(row[cls])
                if cls == 0:
                    add(prefix, 0, total + p)
                elif prefix and prefix[-1] == cls:
                    add(prefix + (cls,), 1, blank + p)  # the class again after a blank: a second character
                    add(prefix, 1, last + p)  # the class again on the next frame: the same character
                else:
                    add(prefix + (cls,), 1, total + p)
        beams = dict(sorted(((k, (v[0], v[1])) for k, v in grown.items()), key=lambda kv: -np.logaddexp(*kv[1]))[:width])
    best = max(beams, key=lambda prefix: np.logaddexp(*beams[prefix]))
    return "".join(alphabet[cls - 1] for cls in best)


def greedy_and_beam(solver: Any, images: Sequence[bytes], width: int) -> tuple[list[str], list[str]]:
    """Each image's greedy reading and its beam search's, from one forward pass, without answer rules."""
    from scrapy_captcha.codec import log_softmax
    from scrapy_captcha.image import to_array

    config = solver.config
    greedy, beam = [], []
    for image in images:
        logits = solver.backend.run(to_array(image, config)[None])[0]
        greedy.append(solver.codec.decode_ctc(logits[None])[0].text)
        beam.append(prefix_beam_search(log_softmax(logits), config.alphabet, width))
    return greedy, beam


def main(argv: list[str] | None = None) -> int:
    from scrapy_captcha import Solver

    from .recognition import read_labelled_folder

    parser = argparse.ArgumentParser(prog="python -m benchmarks.narrow_drops", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a labelled folder ({index}-{label}.png)")
    parser.add_argument("--weights", nargs="+", required=True, help="weights files or bundled names (.pt or .onnx)")
    parser.add_argument("--beam", type=int, metavar="N", help="greedy against a prefix beam search of width N, no answer rules")
    parser.add_argument("--limit", type=int, help="the folder's first N images only")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    images, labels = read_labelled_folder(args.data)
    images, labels = images[:args.limit], labels[:args.limit]
    if not images:
        parser.error(f"{args.data} holds no labelled images")
    results: dict[str, Any] = {"data": str(args.data), "weights": {}}
    for name in args.weights:
        solver = Solver.from_path(name)
        if args.beam:
            greedy, beam = greedy_and_beam(solver, images, args.beam)
            results["weights"][name] = {"greedy": count_drops(labels, greedy), f"beam {args.beam}": count_drops(labels, beam)}
        else:
            results["weights"][name] = {"read": count_drops(labels, [p.text for p in solver.solve_batch(images)])}
        for how, figures in results["weights"][name].items():
            print(f"{name} ({how}): {figures['case_sensitive']:.2%} / {figures['any_case']:.2%}, too short "
                  f"{figures['too_short']}, too long {figures['too_long']}, dropped {figures['narrow_dropped']} of "
                  f"{figures['narrow_characters']} narrow and {figures['other_dropped']} of {figures['other_characters']} other characters")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
