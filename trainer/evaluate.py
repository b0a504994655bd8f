"""Evaluate weights on a labelled folder: accuracy, confusions and latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from scrapy_captcha.arithmetic import arithmetic_answer
from scrapy_captcha.codec import Codec, LabelError
from scrapy_captcha.model import ModelConfig, build_model, count_parameters
from scrapy_captcha.solver import Solver
from scrapy_captcha.weights import BUNDLED_WEIGHTS

from .data import scan_folder
from .metrics import confusions, score


class _AnyCharacters(Codec):
    """Accepts labels with characters the model cannot produce: evaluation scores those as misses."""

    def check(self, text: str, max_length: int | None = None) -> None:
        if not text:
            raise LabelError("label is empty")


def evaluate(data: str | Path, weights: str | Path | None = None, batch_size: int = 256, latency_samples: int = 100,
             allow_skip: bool = False, device: str = "cpu", arithmetic: bool = False, answer_case: str = "as-is",
             alphabet: str | None = None, answer_length: tuple[int, int] | None = None) -> dict[str, Any]:
    """Score ``weights`` (default: the bundled model) on every labelled image in ``data``.

    With ``arithmetic`` the labels are the results (``{index}-{result}.png``) and each reading is
    scored by the answer the middleware would submit (:func:`~scrapy_captcha.arithmetic.solve_expression`;
    a reading that is no expression is a miss). ``answer_case``, ``alphabet`` and ``answer_length``
    read as the middleware does with ``CAPTCHA_ANSWER_CASE``, ``CAPTCHA_ALPHABET`` and
    ``CAPTCHA_ANSWER_LENGTH`` (a folded case scores case-sensitively against the labels as they are).

    A label with characters outside the model's alphabet is scored like any other (those
    characters can only be misses) and counted in ``labels_outside_alphabet``.
    """
    # the middleware's path: bytes -> array -> logits -> text, through onnxruntime for an .onnx file
    onnx = weights is not None and Path(weights).suffix.lower() == ".onnx"
    solver = Solver.from_path(weights or BUNDLED_WEIGHTS, device, backend="onnx" if onnx else "torch")
    config = solver.config
    samples = scan_folder(data, _AnyCharacters(config.alphabet), max_length=10**6, allow_skip=allow_skip)
    images = [path.read_bytes() for path, _ in samples]
    truth = [label for _, label in samples]
    outside = sorted({c for label in truth for c in label if c not in config.alphabet})
    ruled = answer_case != "as-is" or alphabet is not None or answer_length is not None
    rules = solver.answer_rules(answer_case, alphabet, answer_length) if ruled else None  # as the middleware's settings
    predicted = [p.text for start in range(0, len(images), batch_size)
                 for p in solver.solve_batch(images[start:start + batch_size], rules)]
    readings = predicted
    if arithmetic:
        predicted = [arithmetic_answer(text, True)[0] or "" for text in readings]
    for image in images[:3]:  # warm-up: the first calls pay for allocations
        solver.solve(image, rules)
    latencies = []
    for image in images[:latency_samples]:  # one image at a time, as in a crawl
        began = time.perf_counter()
        solver.solve(image, rules)
        latencies.append((time.perf_counter() - began) * 1000)
    return {
        **score(predicted, truth),
        "confusions": [{"true": t, "predicted": p, "count": n} for t, p, n in confusions(predicted, truth)],
        "latency_ms_mean": statistics.fmean(latencies),
        "latency_ms_median": statistics.median(latencies),
        "labels_outside_alphabet": sum(any(c not in config.alphabet for c in label) for label in truth),
        "characters_outside_alphabet": "".join(outside),
        "weights": str(weights or BUNDLED_WEIGHTS),
        # a route (CAPTCHA_WEIGHTS = "auto"): its gate and both models
        "arch": "route: " + " + ".join(c.arch for c in solver.configs) if hasattr(solver, "configs") else config.arch,
        "parameters": sum(_parameters(c) for c in getattr(solver, "configs", [config])),
        "data": str(data),
        "mistakes": [{"file": path.name, "predicted": p, **({"reading": r} if arithmetic else {})}
                     for (path, t), p, r in zip(samples, predicted, readings) if p != t][:50],
        "arithmetic": arithmetic,
        "answer_rules": {"answer_case": answer_case, "alphabet": alphabet, "answer_length": answer_length} if ruled else None,
    }


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of the figures in ``result``."""
    rows = [
        ("images", f"{result['count']}"),
        ("captcha accuracy" + (" (answers: results)" if result.get("arithmetic") else ""), f"{result['sequence_accuracy']:.2%}"),
        ("captcha accuracy, any case", f"{result['sequence_accuracy_case_insensitive']:.2%}"),
        ("character accuracy", f"{result['character_accuracy']:.2%}"),
        ("latency per image (mean)", f"{result['latency_ms_mean']:.2f} ms"),
        ("latency per image (median)", f"{result['latency_ms_median']:.2f} ms"),
        ("model", f"{result['arch']}, {result['parameters']:,} parameters"),
    ]
    if rules := result.get("answer_rules"):
        settings = []
        if rules["answer_case"] != "as-is":
            settings.append(f"CAPTCHA_ANSWER_CASE {rules['answer_case']}")
        if rules["alphabet"] is not None:
            settings.append(f"CAPTCHA_ALPHABET {rules['alphabet']}")
        if rules["answer_length"] is not None:
            shortest, longest = rules["answer_length"]
            settings.append(f"CAPTCHA_ANSWER_LENGTH {shortest}" + (f"-{longest}" if longest != shortest else ""))
        rows.append(("answers read as the middleware's", ", ".join(settings)))
    if "labels_outside_alphabet" in result:
        outside = result["labels_outside_alphabet"]
        rows.append(("labels the model cannot produce", f"{outside}" + (
            f" (characters outside its alphabet: {result['characters_outside_alphabet']!r}; scored as misses)" if outside else "")))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if result["confusions"]:
        lines.append("most frequent confusions (true -> predicted):")
        lines += [f"  {c['true']} -> {c['predicted']}: {c['count']}" for c in result["confusions"]]
    return "\n".join(lines)


def _parameters(config: ModelConfig) -> int:
    """The parameters of the model ``config`` describes (shapes only: an .onnx file folds BatchNorm away)."""
    with torch.device("meta"):
        return count_parameters(build_model(config))
