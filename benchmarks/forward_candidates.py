"""How small a CRNN must be for a 1 ms solve: forward passes of candidate shapes, untrained.

``python -m benchmarks.forward_candidates`` builds CRNNs of several input heights, convolution widths
and sequence-head sizes with random weights (the time of a forward pass does not depend on the
weights' values), exports each as ``python -m trainer export`` does (the conv chain) and times
onnxruntime at batch 1 on one thread on a 160x60 captcha's input size, the candidates taking
turns; it reports parameters, multiply-adds and the median against today's bundled model.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

#: name: (input height, convolution widths, hidden size, classes); the width is a 160x60 image's at that height.
CANDIDATES: dict[str, tuple[int, tuple[int, ...], int, int]] = {
    "bundled today: 60 px, 32-48-96-128-128, hidden 128, 59 classes": (60, (32, 48, 96, 128, 128), 128, 59),
    "generalist: 48 px, 32-48-96-128-128, hidden 192, 70 classes": (48, (32, 48, 96, 128, 128), 192, 70),
    "48 px, 32-48-96-128-128, hidden 128": (48, (32, 48, 96, 128, 128), 128, 70),
    "48 px, 32-48-96-128 (four convolutions), hidden 192": (48, (32, 48, 96, 128), 192, 70),
    "48 px, 24-32-64-96-96, hidden 192": (48, (24, 32, 64, 96, 96), 192, 70),
    "48 px, 24-32-64-96-96, hidden 128": (48, (24, 32, 64, 96, 96), 128, 70),
    "40 px, 32-48-96-128-128, hidden 192": (40, (32, 48, 96, 128, 128), 192, 70),
    "60 px, 24-32-64-96-96, hidden 128, 59 classes": (60, (24, 32, 64, 96, 96), 128, 59),
    "48 px, 24-32-64-96-96, hidden 128, 59 classes": (48, (24, 32, 64, 96, 96), 128, 59),
    "60 px, 24-32-48-64-64, hidden 96, 59 classes": (60, (24, 32, 48, 64, 64), 96, 59),
}


def build(height: int, widths: tuple[int, ...], hidden: int, classes: int):
    """A CRNN as :class:`scrapy_captcha.model.CRNN` builds it for these settings."""
    import torch

    from scrapy_captcha.config import ModelConfig
    from scrapy_captcha.model import CRNN

    torch.manual_seed(0)
    alphabet = "".join(chr(0x4E00 + i) for i in range(classes - 1))
    return CRNN(ModelConfig(height=height, hidden=hidden, widths=widths, alphabet=alphabet)).eval()


def multiply_adds(model, height: int, width: int) -> int:
    import torch
    from torch import nn

    total = 0

    def count(module, _inputs, output) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv2d, nn.Conv1d)):
            total += output.numel() * module.in_channels * int(np.prod(module.kernel_size)) // module.groups
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.inference_mode():
        model(torch.ones(1, 1, height, width))
    for hook in hooks:
        hook.remove()
    return total


def session(model, height: int, width: int):
    import onnxruntime as ort
    import torch

    from trainer.export import ConvChain

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ConvChain(model, height).eval(), (torch.ones(1, 1, height, width),), buffer, dynamo=False,
                          opset_version=17, input_names=["image"], output_names=["logits"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def run(rounds: int = 10, per_round: int = 30) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    built = {}
    for name, (height, widths, hidden, classes) in CANDIDATES.items():
        width = -(-round(160 * height / 60) // 8) * 8  # a 160x60 captcha scaled to the height, padded to the stride
        model = build(height, widths, hidden, classes)
        image = np.random.default_rng(0).random((1, 1, height, width), dtype=np.float32)
        built[name] = (session(model, height, width), image, sum(p.numel() for p in model.parameters()),
                       multiply_adds(model, height, width), width)
    times: dict[str, list[float]] = {name: [] for name in built}
    for sess, image, *_ in built.values():
        for _ in range(10):
            sess.run(None, {"image": image})
    for _ in range(rounds):
        for name, (sess, image, *_) in built.items():
            for _ in range(per_round):
                began = time.perf_counter()
                sess.run(None, {"image": image})
                times[name].append((time.perf_counter() - began) * 1000)
    base = statistics.median(times[next(iter(times))])
    return {name: {"input": f"{width}x{CANDIDATES[name][0]}", "parameters": params, "multiply_adds": macs,
                   "forward_ms": statistics.median(times[name]), "against_bundled": statistics.median(times[name]) / base}
            for name, (_, _, params, macs, width) in built.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forward_candidates", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=HERE / "data" / "forward_candidates.json")
    args = parser.parse_args(argv)
    result = run(args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| candidate | input | parameters | multiply-adds | forward, median | against the bundled model |")
    print("|---|---|---:|---:|---:|---:|")
    for name, row in result.items():
        print(f"| {name} | {row['input']} | {row['parameters'] / 1e6:.2f} M | {row['multiply_adds'] / 1e6:.0f} M "
              f"| {row['forward_ms']:.3f} ms | {row['against_bundled']:.2f} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
