"""``python -m trainer``: generate data, train, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.config import CRNN_WIDTHS
from scrapy_captcha.config import READERS
from scrapy_captcha.learning import LEARN_AFTER
from scrapy_captcha.model import ModelConfig

from .generate import GeneratorSpec
from .render import GENERALIST_ALPHABET, parse_mix


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


def _alphabet(text: str) -> str:
    return GENERALIST_ALPHABET if text == "generalist" else text


def _mix(text: str) -> str:
    try:
        parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, not {text!r}")
    return value


def _curriculum(text: str) -> tuple[float, float]:
    start, _, ramp = text.partition(":")
    try:
        values = (_share(start), _share(ramp or "0.5"))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected START:RAMP, two numbers in [0, 1] (e.g. 0.2:0.5), not {text!r}") from None
    if values[1] == 0:
        raise argparse.ArgumentTypeError(f"the curriculum's RAMP must be above 0, not {text!r}")
    return values


def _add_generator_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("synthetic captchas")
    group.add_argument("--length", type=_lengths, default=(4, 4), help="characters per captcha, N or N-M (default: 4)")
    group.add_argument("--width", type=int, default=160, help="image width (default: 160)")
    group.add_argument("--height", type=int, default=60, help="image height (default: 60)")
    group.add_argument("--alphabet", type=_alphabet, default=SEED_ALPHABET,
                       help="characters to draw from, or 'generalist' (0-9, a-z, A-Z and +-*×÷=?) (default: the seed's 58)")
    group.add_argument("--font", action="append", default=[], help="a .ttf font file; repeat for several (default: the library's)")
    group.add_argument("--font-sizes", type=_ints, default=(), help="comma-separated sizes (default: 42,50,56)")
    group.add_argument("--style", type=_mix, default=None,
                       help="renderer family or mix: 0.7 or 0.5 (the captcha library's styles), mixed (both), plain, styled, "
                            "scattered (styled, with tumbling, scattered characters), tangled (styled, with clutter in the text's own ink and "
                            "weight), pastel (styled, each character its own colour, some pale), arithmetic, junk (images with no text, labelled empty: mix a little in, e.g. 0.7:1,0.5:1,junk:0.05, so the model "
                            "reads nothing into noise), plugin (--generator), a generalist mix (generalist, generalist-final, "
                            "generalist-seed, generalist-wide, generalist-narrow, generalist-tangled), or weights such as styled:3,0.7:1 "
                            "(default: 0.7; plugin with --generator)")
    group.add_argument("--fonts", action="append", default=[], metavar="DIR",
                       help="a folder of .ttf/.otf fonts for the plain, styled, scattered, tangled, pastel and arithmetic families, besides the installed ones")
    group.add_argument("--generator", metavar="MODULE:FUNCTION",
                       help="your own captcha generator (a callable: text -> PIL image), the 'plugin' family")
    group.add_argument("--difficulty", type=_share, default=1.0,
                       help="clutter, warps and contrast of our families, 0 (clean) to 1 (default: 1)")


#: CAPTCHA_ANSWER_CASE's values (``scrapy_captcha.settings.ANSWER_CASES``, written out here: importing the
#: settings module imports Scrapy, half a second on every CLI call).
ANSWER_CASES = ("as-is", "lower", "upper")


def _add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision`` of ``train`` and ``adapt``. The choices are ``trainer.precision.PRECISIONS``, written out
    here so that parsing the command line does not import the training loop (matplotlib and all)."""
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="bf16: bfloat16 autocast, faster on CPUs with AVX512-BF16 or AMX, slower on others "
                             "(default auto: bf16 on a GPU, fp32 on the CPU)")


def _spec(args: argparse.Namespace) -> GeneratorSpec:
    style = args.style or ("plugin" if args.generator else "0.7")
    return GeneratorSpec(args.width, args.height, args.alphabet, args.length, tuple(args.font), args.font_sizes, style,
                         tuple(str(d) for d in args.fonts), args.generator, args.difficulty)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write a synthetic data set as {index}-{label}.png",
                              description="Write COUNT synthetic captchas into OUT, atomically, in parallel.")
    gen.add_argument("out", type=Path, nargs="?", help="folder to create")
    gen.add_argument("--count", type=int, help="number of images")
    gen.add_argument("--result-labels", action="store_true",
                     help="name arithmetic captchas by their result ({index}-{result}.png, for evaluate --arithmetic)")
    gen.add_argument("--preview", type=Path, metavar="SHEET.png",
                     help="draw a contact sheet of the style's families into this file (OUT and --count not needed)")
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
    train.add_argument("--arch", choices=READERS, default="crnn", help="model architecture (default: crnn)")
    train.add_argument("--init", help="weights to fine-tune from: a file, or a bundled model's name (bundled or default, generalist, ...)")
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
    train.add_argument("--resize", choices=("stretch", "pad", "height"), default="stretch",
                       help="how images meet the model: stretch to WIDTHxHEIGHT, pad to it, or scale to HEIGHT keeping "
                            "the aspect ratio, any width (crnn; default: stretch)")
    train.add_argument("--input-height", type=int, help="the model's input height (default: --height)")
    train.add_argument("--hidden", type=int, default=128, help="width of the CRNN's sequence head (default: 128)")
    train.add_argument("--widths", type=_ints, default=CRNN_WIDTHS, metavar="W1,W2,...",
                       help="the CRNN's convolution widths, at least three (default: %s)" % ",".join(map(str, CRNN_WIDTHS)))
    train.add_argument("--frames-per-column", type=int, choices=(1, 2, 3, 4), metavar="K",
                       help="CTC frames per 8 input columns (crnn; default 1); with --init, its head is widened to K")
    train.add_argument("--curriculum", type=_curriculum, metavar="START:RAMP",
                       help="synthetic difficulty from START up to 1 over the first RAMP share of training (e.g. 0.2:0.5)")
    train.add_argument("--workers", type=int, default=2, help="data loading processes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: the GPU if there is one)")
    train.add_argument("--echo", type=int, default=1, metavar="N",
                       help="train on each synthetic image N times, freshly augmented each time, in N successive pools: "
                            "on a few CPU cores drawing competes with training (default: 1, every image new)")
    _add_precision_option(train)
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    _add_generator_options(train)

    ev = commands.add_parser("evaluate", help="score weights on a labelled folder",
                             description="Sequence and character accuracy, confusions and latency.")
    ev.add_argument("--data", type=Path, required=True, help="labelled folder")
    ev.add_argument("--weights", type=Path, help="weights file, .pt or .onnx (default: the bundled model)")
    ev.add_argument("--json", type=Path, help="also write the results here as JSON")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--allow-skip", action="store_true", help="skip unusable files instead of stopping")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--arithmetic", action="store_true",
                    help="labels are the results of arithmetic captchas ({index}-{result}.png): score the answers, not the readings")
    ev.add_argument("--answer-case", choices=ANSWER_CASES, default="as-is",
                    help="read as the middleware with CAPTCHA_ANSWER_CASE (default: as-is)")
    ev.add_argument("--alphabet", help="read as the middleware with CAPTCHA_ALPHABET: answers hold only these characters")
    ev.add_argument("--answer-length", metavar="N or MIN-MAX", help="read as the middleware with CAPTCHA_ANSWER_LENGTH")

    adapt = commands.add_parser("adapt", help="fine-tune on a CAPTCHA_HARVEST_DIR recording (few or no hand labels)",
                                description="Accepted answers and hand labels as labels, the other images as "
                                            "unlabelled data (pseudo-labels from an EMA teacher), rejected answers never targets.")
    adapt.add_argument("folder", type=Path, help="the recording folder (CAPTCHA_HARVEST_DIR)")
    adapt.add_argument("--out", type=Path, required=True, help="output folder: weights.pt, metrics.json, curves, predictions")
    adapt.add_argument("--weights", type=Path, help="weights to start from, or a route such as 'auto' (the default, as the "
                                                    "middleware's): the route's model for the style of most recorded images")
    adapt.add_argument("--labels", type=Path, action="append", default=[], help="a labelled folder to add; repeat for several")
    adapt.add_argument("--steps", type=int, default=300)
    adapt.add_argument("--batch-size", type=int, default=32, help="labelled images per step")
    adapt.add_argument("--unlabelled-ratio", type=int, default=2, help="unlabelled images per labelled one in a step")
    adapt.add_argument("--lr", type=float, help="peak learning rate (default: 3e-3 with hand labels, else 1e-3)")
    adapt.add_argument("--threshold", type=float, default=0.9, help="teacher confidence that makes a reading a target")
    adapt.add_argument("--supervised-share", type=float,
                       help="first share of the steps on labelled images alone (default: 0.3 with hand labels, else 0)")
    adapt.add_argument("--labelled-augmentation", choices=("weak", "strong"),
                       help="augmentation of the labelled images (default: strong with hand labels, else weak)")
    adapt.add_argument("--holdout", type=float, default=0.15, help="share of the labelled images held out")
    adapt.add_argument("--alphabet", help="the characters the site draws (as CAPTCHA_ALPHABET): the teacher's readings keep "
                                          "to them, the synthetic prior draws them, the model grows any it lacks")
    adapt.add_argument("--answer-case", choices=ANSWER_CASES, default="as-is",
                       help="the case the site expects (as CAPTCHA_ANSWER_CASE): the teacher's readings are folded to it")
    adapt.add_argument("--answer-length", metavar="N or MIN-MAX",
                       help="how many characters the site's answers have (as CAPTCHA_ANSWER_LENGTH): the teacher's readings keep to it")
    adapt.add_argument("--learn-after", type=int, default=LEARN_AFTER, metavar="N",
                       help="as CAPTCHA_LEARN_AFTER: the length (N labels all of one), case (4 x N letters, at most one in 8 "
                            "of the other case) and kind of characters (8 x N characters, no digit or no letter) the labels "
                            "show, the teacher's readings keep to, where --answer-length, --answer-case, --alphabet do not say "
                            f"(default: {LEARN_AFTER}; 0: never)")
    adapt.add_argument("--balance", action="store_true",
                       help="draw labelled images holding rare characters more often (repeat-factor sampling)")
    adapt.add_argument("--synthetic-share", type=float, default=0.0,
                       help="per labelled image of a step, this many captchas our renderer draws in --alphabet (default: 0)")
    adapt.add_argument("--rejected-weight", type=float, default=0.0,
                       help="weight of a penalty on the probability of answers the site rejected (default: 0)")
    adapt.add_argument("--align", action="store_true",
                       help="align the teacher's readings to an even use of --alphabet's characters, so the ones it under-reads "
                            "become pseudo-labels (distribution alignment; assumes the site draws its characters evenly)")
    adapt.add_argument("--eval-every", type=int, default=50, help="steps between held-out evaluations")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    adapt.add_argument("--device", default="cpu")
    _add_precision_option(adapt)
    adapt.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    export = commands.add_parser("export", help="export a weights file to ONNX for the torch-free runtime",
                                 description="Write WEIGHTS as an ONNX file (settings and summary in its metadata, any "
                                             "batch size and width), checked against the torch model.")
    export.add_argument("weights", type=Path, nargs="?", help="a .pt weights file (default: the bundled model)")
    export.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    export.add_argument("--int8", type=Path, metavar="DIR",
                        help="quantise to int8, calibrated on half of the captcha images in DIR (about 2x faster on CPUs "
                             "with int8 instructions; a few answers may differ from the float model: the other half says how many)")

    average = commands.add_parser("average", help="the mean of two runs' weights (one fine-tuned from the other)",
                                  description="Write (1 - share) x FIRST + share x SECOND, tensor by tensor, as a weights "
                                              "file: two runs of one model, such as a stage and the stage it started from.")
    average.add_argument("first", type=Path, help="a .pt weights file, or a bundled model's name")
    average.add_argument("second", type=Path, help="a .pt weights file (or a bundled model's name) of the same model")
    average.add_argument("--share", type=float, default=0.5, help="the second file's share (default: 0.5)")
    average.add_argument("--out", type=Path, required=True, help="the .pt file to write")

    gate = commands.add_parser("gate", help="train the style gate of a route (which model reads an image)",
                               description="Train the gate that sends the captcha library's styles to the default model "
                                           "and the rest to the generalist (CAPTCHA_WEIGHTS = \"auto\"), on our renderer's "
                                           "images only; writes OUT/weights.pt.")
    gate.add_argument("--out", type=Path, required=True, help="output folder")
    gate.add_argument("--images", type=int, default=24000, help="training images, drawn once (default: 24000)")
    gate.add_argument("--epochs", type=int, default=4)
    gate.add_argument("--workers", type=int, default=2, help="drawing processes (default: 2)")
    gate.add_argument("--seed", type=int, default=1)

    label = commands.add_parser("label", help="label a recording's unlabelled images in a browser page",
                                description="Serve a labelling page on 127.0.0.1; labels go to DIR/records/labels.tsv.")
    label.add_argument("folder", type=Path, help="the recording folder (CAPTCHA_HARVEST_DIR) or a folder of images")
    label.add_argument("--weights", type=Path, help="weights whose guesses pre-fill the page (default: the bundled model)")
    label.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one, printed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scrapy_captcha.weights import WeightsError
    from .data import DataError

    try:
        if args.command == "generate":
            from .generate import generate_dataset

            if args.preview:
                from .generate import write_preview

                print(f"wrote a contact sheet to {write_preview(args.preview, _spec(args), seed=args.seed or 0)}")
            if args.out is None or args.count is None:
                if not args.preview:
                    raise ValueError("generate needs OUT and --count (or --preview SHEET.png)")
            else:
                out = generate_dataset(args.out, args.count, _spec(args), args.workers, args.seed, args.force,
                                       result_labels=args.result_labels)
                print(f"wrote {args.count} images to {out}")
        elif args.command == "train":
            from .train import TrainConfig, run

            length = args.length[1] if args.arch == "seed-vgg" else args.max_length
            model = ModelConfig(arch=args.arch, alphabet=args.alphabet, height=args.input_height or args.height, width=args.width,
                                max_length=length, case_sensitive=not args.case_insensitive, resize=args.resize, hidden=args.hidden,
                                widths=args.widths, frames_per_column=args.frames_per_column or 1)
            options = {k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "val_size", "batch_size", "lr", "weight_decay",
                                                     "warmup", "patience", "max_minutes", "augment", "allow_skip", "workers",
                                                     "seed", "device", "precision", "progress", "resume", "init",
                                                     "curriculum", "echo", "frames_per_column")}
            run(TrainConfig(out=str(args.out), train_dir=args.train_dir and str(args.train_dir),
                            val_dir=args.val_dir and str(args.val_dir), model=model, synthetic=_spec(args), **options))
        elif args.command == "adapt":
            from .adapt import AdaptConfig, run as adapt

            options = {k: getattr(args, k) for k in ("steps", "batch_size", "unlabelled_ratio", "lr", "threshold", "holdout",
                                                     "eval_every", "seed", "resume", "device", "precision", "progress",
                                                     "supervised_share", "labelled_augmentation", "alphabet", "answer_case",
                                                     "learn_after", "balance", "synthetic_share", "rejected_weight", "align")}
            from scrapy_captcha.settings import read_answer_length

            options["answer_length"] = read_answer_length(args.answer_length)
            adapt(AdaptConfig(folder=str(args.folder), out=str(args.out), weights=args.weights and str(args.weights),
                              labels=[str(path) for path in args.labels], **options))
        elif args.command == "export":
            from .export import export

            out, difference = export(args.weights, args.out, args.int8)
            if args.int8:
                print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, int8; reads {difference:.1%} of the held-out "
                      f"images differently from the float model)")
            else:
                print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; largest logit difference from torch {difference:.1e})")
        elif args.command == "average":
            from scrapy_captcha.weights import load_weights, save_weights

            from .surgery import average_weights

            mean = average_weights(load_weights(args.first), load_weights(args.second), args.share)
            save_weights(args.out, mean.build(), mean.config, mean.summary)
            print(f"wrote {args.out}: {1 - args.share:g} x {args.first} + {args.share:g} x {args.second}")
        elif args.command == "gate":
            from .gate import GateConfig, train_gate

            train_gate(GateConfig(out=str(args.out), images=args.images, epochs=args.epochs, workers=args.workers,
                                  seed=args.seed))
        elif args.command == "label":
            from .label import serve

            serve(args.folder, args.weights, args.port)
        else:
            from scrapy_captcha.settings import read_answer_length

            from .evaluate import evaluate, format_report

            result = evaluate(args.data, args.weights, args.batch_size, allow_skip=args.allow_skip, device=args.device,
                              arithmetic=args.arithmetic, answer_case=args.answer_case, alphabet=args.alphabet,
                              answer_length=read_answer_length(args.answer_length))
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
