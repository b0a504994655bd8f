"""Evaluate weights on a labelled folder: accuracy, confusions and latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from scrapy_captcha.codec import Codec
from scrapy_captcha.image import to_tensor
from scrapy_captcha.model import count_parameters, decode
from scrapy_captcha.weights import BUNDLED_WEIGHTS, load_weights

from .data import scan_folder
from .metrics import confusions, score


def evaluate(data: str | Path, weights: str | Path | None = None, batch_size: int = 256, latency_samples: int = 100,
             allow_skip: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Score ``weights`` (default: the bundled model) on every labelled image in ``data``."""
    loaded = load_weights(weights)
    config = loaded.config
    model = loaded.build(device)
    samples = scan_folder(data, Codec(config.alphabet), max_length=10**6, allow_skip=allow_skip)
    tensors = [to_tensor(path.read_bytes(), config) for path, _ in samples]
    truth = [label for _, label in samples]
    predicted: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(tensors), batch_size):
            batch = torch.stack(tensors[start:start + batch_size]).to(device)
            predicted += [p.text for p in decode(model(batch), config)]
        latencies = []
        for path, _ in samples[:3]:  # warm-up: the first calls pay for allocations
            decode(model(to_tensor(path.read_bytes(), config)[None].to(device)), config)
        for path, _ in samples[:latency_samples]:  # bytes to text, one image at a time, as in a crawl
            raw = path.read_bytes()
            began = time.perf_counter()
            decode(model(to_tensor(raw, config)[None].to(device)), config)
            latencies.append((time.perf_counter() - began) * 1000)
    return {
        **score(predicted, truth),
        "confusions": [{"true": t, "predicted": p, "count": n} for t, p, n in confusions(predicted, truth)],
        "latency_ms_mean": statistics.fmean(latencies),
        "latency_ms_median": statistics.median(latencies),
        "weights": str(weights or BUNDLED_WEIGHTS),
        "arch": config.arch,
        "parameters": count_parameters(model),
        "data": str(data),
        "mistakes": [{"file": path.name, "predicted": p} for (path, t), p in zip(samples, predicted) if p != t][:50],
    }


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of the figures in ``result``."""
    rows = [
        ("images", f"{result['count']}"),
        ("captcha accuracy", f"{result['sequence_accuracy']:.2%}"),
        ("captcha accuracy, any case", f"{result['sequence_accuracy_case_insensitive']:.2%}"),
        ("character accuracy", f"{result['character_accuracy']:.2%}"),
        ("latency per image (mean)", f"{result['latency_ms_mean']:.2f} ms"),
        ("latency per image (median)", f"{result['latency_ms_median']:.2f} ms"),
        ("model", f"{result['arch']}, {result['parameters']:,} parameters"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if result["confusions"]:
        lines.append("most frequent confusions (true -> predicted):")
        lines += [f"  {c['true']} -> {c['predicted']}: {c['count']}" for c in result["confusions"]]
    return "\n".join(lines)
