"""Write a test set drawn by captcha 0.5.0, the version the seed notebook ran.

Run it in a separate virtual environment that has ``captcha==0.5.0`` (``make data/test-0.5.0``
makes one), since the project itself installs 0.7.1. Uses only the standard library and captcha.
0.5.0 draws from ``random``, so ``--seed`` makes the set repeatable.

    python benchmarks/legacy_captcha_set.py OUT --count 2000 --seed 50
"""

import argparse
import os
import random
import shutil
import tempfile
from pathlib import Path

import captcha
from captcha.image import ImageCaptcha

SEED_ALPHABET = "0123456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--length", type=int, default=4)
    parser.add_argument("--seed", type=int, default=50)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; remove it first")
    random.seed(args.seed)
    generator = ImageCaptcha(width=160, height=60)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=args.out.parent, prefix=f".{args.out.name}.partial-"))
    try:
        for index in range(1, args.count + 1):
            text = "".join(random.choice(SEED_ALPHABET) for _ in range(args.length))
            generator.write(text, str(tmp / f"{index}-{text}.png"))
        os.rename(tmp, args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.count} captcha {captcha.__version__} images to {args.out}")


if __name__ == "__main__":
    main()
