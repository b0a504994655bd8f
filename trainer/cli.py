"""``python -m trainer``: generate data, train, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.model import ARCHITECTURES, ModelConfig

from .generate import GeneratorSpec
from .synth import STYLES


def _lengths(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        lengths = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N-M, not {text!r}") from None
    if not 1 <= lengths[0] <= lengths[1]:
        raise argparse.ArgumentTypeError(f"bad length range {text!r}")
    return lengths


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _add_generator_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("synthetic captchas")
    group.add_argument("--length", type=_lengths, default=(4, 4), help="characters per captcha, N or N-M (default: 4)")
    group.add_argument("--width", type=int, default=160, help="image width (default: 160)")
    group.add_argument("--height", type=int, default=60, help="image height (default: 60)")
    group.add_argument("--alphabet", default=SEED_ALPHABET, help="characters to draw from (default: the seed's 58)")
    group.add_argument("--font", action="append", default=[], help="a .ttf font file; repeat for several (default: the library's)")
    group.add_argument("--font-sizes", type=_ints, default=(), help="comma-separated sizes (default: 42,50,56)")
    group.add_argument("--style", choices=STYLES, default="0.7",
                       help="draw like captcha 0.7.1, 0.5.0, or a mix per image (default: 0.7)")


def _spec(args: argparse.Namespace) -> GeneratorSpec:
    return GeneratorSpec(args.width, args.height, args.alphabet, args.length, tuple(args.font), args.font_sizes, args.style)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write a synthetic data set as {index}-{label}.png",
                              description="Write COUNT synthetic captchas into OUT, atomically, in parallel.")
    gen.add_argument("out", type=Path, help="folder to create")
    gen.add_argument("--count", type=int, required=True, help="number of images")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    gen.add_argument("--seed", type=int, default=None, help="seed for the labels and style choices")
    gen.add_argument("--force", action="store_true", help="replace OUT if it exists")
    _add_generator_options(gen)

    train = commands.add_parser("train", help="train or fine-tune a model",
                                description="Train on a labelled folder or an endless synthetic stream.")
    train.add_argument("--out", type=Path, default=Path("runs/latest"), help="output folder (default: runs/latest)")
    train.add_argument("--data", dest="train_dir", type=Path, help="labelled training folder (default: synthetic stream)")
    train.add_argument("--val", dest="val_dir", type=Path,
                       help="labelled validation folder (default: a tenth of --data, or 2000 synthetic images)")
    train.add_argument("--arch", choices=ARCHITECTURES, default="crnn", help="model architecture (default: crnn)")
    train.add_argument("--init", help="weights to fine-tune from, or 'bundled' for the bundled model")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--steps-per-epoch", type=int, default=1000, help="steps per epoch on the synthetic stream")
    train.add_argument("--val-size", type=int, default=2000, help="synthetic validation images (without --val/--data)")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    train.add_argument("--weight-decay", type=float, default=0.01)
    train.add_argument("--warmup", type=float, default=0.1, help="share of steps spent warming up")
    train.add_argument("--patience", type=int, default=0, help="stop after N epochs without improvement (0: off)")
    train.add_argument("--max-minutes", type=float, help="time budget: the schedule is stretched to end within it")
    train.add_argument("--no-augment", dest="augment", action="store_false", help="switch augmentation off")
    train.add_argument("--allow-skip", action="store_true", help="skip unusable files instead of stopping")
    train.add_argument("--max-length", type=int, default=8, help="longest text the model reads (seed-vgg: exact length)")
    train.add_argument("--case-insensitive", action="store_true", help="record that answers are case-insensitive")
    train.add_argument("--workers", type=int, default=2, help="data loading processes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: the GPU if there is one)")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    _add_generator_options(train)

    ev = commands.add_parser("evaluate", help="score weights on a labelled folder",
                             description="Sequence and character accuracy, confusions and latency.")
    ev.add_argument("--data", type=Path, required=True, help="labelled folder")
    ev.add_argument("--weights", type=Path, help="weights file (default: the bundled model)")
    ev.add_argument("--json", type=Path, help="also write the results here as JSON")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--allow-skip", action="store_true", help="skip unusable files instead of stopping")
    ev.add_argument("--device", default="cpu")

    export = commands.add_parser("export", help="export a weights file to ONNX for the torch-free runtime",
                                 description="Write WEIGHTS as an ONNX file (settings and summary in its metadata, any "
                                             "batch size and width), checked against the torch model.")
    export.add_argument("weights", type=Path, nargs="?", help="a .pt weights file (default: the bundled model)")
    export.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scrapy_captcha.weights import WeightsError
    from .data import DataError

    try:
        if args.command == "generate":
            from .generate import generate_dataset

            out = generate_dataset(args.out, args.count, _spec(args), args.workers, args.seed, args.force)
            print(f"wrote {args.count} images to {out}")
        elif args.command == "train":
            from .train import TrainConfig, run

            length = args.length[1] if args.arch == "seed-vgg" else args.max_length
            model = ModelConfig(arch=args.arch, alphabet=args.alphabet, height=args.height, width=args.width,
                                max_length=length, case_sensitive=not args.case_insensitive)
            options = {k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "val_size", "batch_size", "lr", "weight_decay",
                                                     "warmup", "patience", "max_minutes", "augment", "allow_skip", "workers",
                                                     "seed", "device", "progress", "resume", "init")}
            run(TrainConfig(out=str(args.out), train_dir=args.train_dir and str(args.train_dir),
                            val_dir=args.val_dir and str(args.val_dir), model=model, synthetic=_spec(args), **options))
        elif args.command == "export":
            from .export import export

            out, difference = export(args.weights, args.out)
            print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; largest logit difference from torch {difference:.1e})")
        else:
            from .evaluate import evaluate, format_report

            result = evaluate(args.data, args.weights, args.batch_size, allow_skip=args.allow_skip, device=args.device)
            print(format_report(result))
            if args.json:
                args.json.write_text(json.dumps(result, indent=2))
    except (DataError, WeightsError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
