"""``python -m benchmarks.case_prior``: what one case a captcha is worth to the bundled route.

Reads every image of each labelled set through the bundled route ``"auto"`` (onnxruntime, as a crawl:
one image at a time, other views and all) once for each share of
:class:`~scrapy_captcha.case_prior.CasePrior` given to its generalist (0: the rule off), and scores
the answers case-sensitive and any case. ``--draw-own FOLDER`` first draws the sets the share is
chosen on, from our own renderer only: 600 images each of capitals and digits, small letters and
digits, and both cases (the generalist mix, 4 to 8 characters, seeds 301 to 303). Choose on those;
the unseen sets only report what a choice does (README, "The bundled route"). Writes
``benchmarks/case_prior.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scrapy_captcha import Solver
from scrapy_captcha.case_prior import CasePrior

from .machine import describe, shown_path
from .recognition import read_labelled_folder

OUT = Path(__file__).parent / "case_prior.json"
OWN_SETS = {  # name: (alphabet, seed)
    "own-capitals": ("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 301),
    "own-small": ("abcdefghijklmnopqrstuvwxyz0123456789", 302),
    "own-both-cases": ("generalist", 303),
}


def draw_own(folder: Path) -> list[Path]:
    """Our renderer's three sets under ``folder`` (each drawn once; an existing one is kept)."""
    from trainer.generate import GeneratorSpec, generate_dataset
    from trainer.render import GENERALIST_ALPHABET

    paths = []
    for name, (alphabet, seed) in OWN_SETS.items():
        path = folder / name
        if not path.is_dir():
            spec = GeneratorSpec(alphabet=GENERALIST_ALPHABET if alphabet == "generalist" else alphabet, lengths=(4, 8),
                                 style="generalist")
            generate_dataset(path, 600, spec, seed=seed, progress=False)
        paths.append(path)
    return paths


def measure(route: Any, folder: Path, shares: list[float]) -> dict[str, Any]:
    """Both accuracies of the route on ``folder`` at each share of its generalist's one-case rule."""
    images, labels = read_labelled_folder(folder)
    generalist = route.expert("otherwise")
    result: dict[str, Any] = {"images": len(images)}
    for share in shares:
        generalist.case_prior = CasePrior(generalist.config.alphabet, share) if share else None
        texts = [route.solve(image).text for image in images]
        exact = sum(text == label for text, label in zip(texts, labels))
        any_case = sum(text.lower() == label.lower() for text, label in zip(texts, labels))
        result[f"{share:g}"] = {"case_sensitive": round(exact / len(labels), 4), "any_case": round(any_case / len(labels), 4)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.case_prior", description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", type=Path, help="labelled folders ({index}-{label}.png)")
    parser.add_argument("--draw-own", type=Path, metavar="FOLDER", help="draw our renderer's three sets here and measure them first")
    parser.add_argument("--shares", default=None, help="comma-separated shares (default: 0 and the bundled route's)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    route = Solver.from_path("auto", backend="onnx")
    shares = [float(share) for share in args.shares.split(",")] if args.shares else [0.0, route.route.otherwise_one_case]
    folders = (draw_own(args.draw_own) if args.draw_own else []) + list(args.data)
    if not folders:
        parser.error("name labelled folders, or --draw-own FOLDER")
    results = {"command": "python -m benchmarks.case_prior " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": describe(), "bundled_share": route.route.otherwise_one_case, "sets": {}}
    for folder in folders:
        result = results["sets"][shown_path(folder)] = measure(route, folder, shares)
        print(f"{folder}: " + ", ".join(f"{share:g}: {result[f'{share:g}']['case_sensitive']:.1%} / "
                                         f"{result[f'{share:g}']['any_case']:.1%}" for share in shares), flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
