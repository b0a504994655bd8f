"""Renderer speed: images per second per family, one process (one core), as the trainer draws them.

``python -m benchmarks.render_speed [--count 400] [--repeats 3] [--difficulty 1.0]`` prints a
Markdown table: for each family and the generalist mix, the median over ``repeats`` runs of images
drawn per second, and of images drawn and preprocessed (``to_tensor`` at the generalist's 48-pixel
height, as the training stream does), with the median image size. The machine's load average is
printed too: on shared cores every figure is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from scrapy_captcha.image import to_tensor
from scrapy_captcha.model import ModelConfig
from trainer.render import GENERALIST_ALPHABET, TextSpec, build_drawer

FAMILIES = ("0.7", "0.5", "plain", "styled", "arithmetic", "generalist")


def measure(mix: str, count: int, repeats: int, difficulty: float, preprocess: bool) -> tuple[float, tuple[int, int]]:
    """Median images per second over ``repeats`` runs of ``count`` images, and the median size."""
    text = TextSpec(GENERALIST_ALPHABET, (1, 12))
    drawer = build_drawer(mix, text, difficulty=difficulty)
    config = ModelConfig(alphabet=GENERALIST_ALPHABET, height=48, resize="height", max_length=12)
    rng = random.Random(0)
    for _ in range(20):  # fonts load and caches fill on first use
        drawer.draw(rng)
    rates, widths, heights = [], [], []
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(count):
            image, _ = drawer.draw(rng)
            if preprocess:
                to_tensor(image, config)
            widths.append(image.width)
            heights.append(image.height)
        rates.append(count / (time.perf_counter() - began))
    return statistics.median(rates), (int(statistics.median(widths)), int(statistics.median(heights)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--difficulty", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); difficulty {args.difficulty}")
    print("| family | images/s drawn | images/s drawn + to_tensor | median size |")
    print("|---|---:|---:|---|")
    for mix in FAMILIES:
        drawn, size = measure(mix, args.count, args.repeats, args.difficulty, preprocess=False)
        both, _ = measure(mix, args.count, args.repeats, args.difficulty, preprocess=True)
        print(f"| {mix} | {drawn:.0f} | {both:.0f} | {size[0]}x{size[1]} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
