"""Inference speed: per-image latency at batch 1 and images per second at batch 64.

Latency is bytes -> text for one image, the path the middleware takes (``Solver.solve``:
decode, preprocess, forward pass, CTC or one-hot decoding). The contenders take turns in rounds
so that a passing load on the machine hits all of them alike; medians are reported.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Sequence

from .contenders import Contender


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency(contenders: Sequence[Contender], images: Sequence[bytes], threads: int, calls: int = 300,
            rounds: int = 5, seconds_per_model: float = 20.0, warmup: int = 5) -> dict[str, dict[str, Any]]:
    """Milliseconds per ``solve(image)`` for each contender with ``threads`` threads.

    Each contender makes up to ``calls`` calls in ``rounds`` turns, fewer if it would take more
    than ``seconds_per_model`` (but at least 20 calls).
    """
    for contender in contenders:
        contender.set_threads(threads)
        for image in images[:warmup]:  # the first calls pay for allocations and lazy set-up
            contender.solve(image)
    samples: dict[str, list[float]] = {c.key: [] for c in contenders}
    spent: dict[str, float] = {c.key: 0.0 for c in contenders}
    per_round = max(1, calls // rounds)
    cursor = 0
    for _ in range(rounds):
        for contender in contenders:
            budget = seconds_per_model / rounds
            round_began = time.perf_counter()
            for _ in range(per_round):
                image = images[cursor % len(images)]
                cursor += 1
                began = time.perf_counter()
                contender.solve(image)
                samples[contender.key].append((time.perf_counter() - began) * 1000)
                if time.perf_counter() - round_began > budget and len(samples[contender.key]) >= 20:
                    break
            spent[contender.key] += time.perf_counter() - round_began
    return {
        key: {
            "threads": threads,
            "calls": len(values),
            "median_ms": statistics.median(values),
            "p95_ms": _percentile(values, 0.95),
            "mean_ms": statistics.fmean(values),
        }
        for key, values in samples.items()
    }


def throughput(contenders: Sequence[Contender], images: Sequence[bytes], batch_size: int = 64, repeats: int = 5,
               threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Images per second, bytes -> text, ``batch_size`` images per call (one by one where there is no batch API)."""
    threads = threads or os.cpu_count() or 1
    batch = [images[i % len(images)] for i in range(batch_size)]
    for contender in contenders:
        contender.set_threads(threads)
        contender.solve_batch(batch)  # warm-up
    seconds: dict[str, list[float]] = {c.key: [] for c in contenders}
    for _ in range(repeats):
        for contender in contenders:
            began = time.perf_counter()
            contender.solve_batch(batch)
            seconds[contender.key].append(time.perf_counter() - began)
    return {
        c.key: {
            "threads": threads,
            "batch_size": batch_size,
            "batches": repeats,
            "images_per_second": batch_size / statistics.median(seconds[c.key]),
            "batched": c.batch_api,
        }
        for c in contenders
    }


def forward_latency(contenders: Sequence[Contender], image: bytes, threads: int = 1, calls: int = 200,
                    seconds_per_model: float = 10.0) -> dict[str, dict[str, Any]]:
    """Milliseconds per forward pass alone (a preprocessed 1-image batch in, logits out), PyTorch models only.

    Set beside the bytes -> text latency, it shows how much of a solve is the network itself.
    """
    import torch

    from scrapy_captcha.image import to_tensor

    torch.set_num_threads(threads)
    out = {}
    for contender in contenders:
        solver = getattr(contender, "solver", None)
        if solver is None:
            continue
        batch = to_tensor(image, solver.config)[None]
        values: list[float] = []
        began_all = time.perf_counter()
        with torch.inference_mode():
            for _ in range(3):
                solver.model(batch)
            while len(values) < calls and (len(values) < 20 or time.perf_counter() - began_all < seconds_per_model):
                began = time.perf_counter()
                solver.model(batch)
                values.append((time.perf_counter() - began) * 1000)
        out[contender.key] = {"threads": threads, "calls": len(values), "median_ms": statistics.median(values)}
    return out
