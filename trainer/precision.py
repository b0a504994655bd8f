"""Training precision: float32, or bfloat16 autocast where it pays (``train`` and ``adapt``'s ``--precision``)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> None:
    """Raise ValueError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


def autocast(precision: str, device: torch.device) -> Any:
    """The context a forward pass runs in: bfloat16 autocast (weights, optimiser and loss stay float32) or nothing.

    On a CPU with bfloat16 instructions (AVX512-BF16, AMX) training runs faster in bfloat16 (1.34 times
    the steps a minute on 2 cores, ``benchmarks/train_speed.py``); without them it is slower, so
    ``auto`` keeps float32 there.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16) if uses_bf16(precision, device) else nullcontext()


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether ``precision`` means bfloat16 autocast on ``device`` (``auto``: on a GPU only)."""
    check_precision(precision)
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), as torch's CPU dispatch sees them."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up with care
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    except Exception:  # noqa: BLE001 - a probe that fails means no hint, never a failed run
        return False


def bf16_hint(precision: str, device: torch.device) -> str | None:
    """A line for a float32 run that ``--precision bf16`` would speed up: ``auto`` on a CPU with bfloat16 instructions.

    ``auto`` stays float32 on every CPU (recipes measured in float32 reproduce as they were); the hint
    says what the flag is worth here.
    """
    if precision != "auto" or device.type != "cpu" or not cpu_has_bf16():
        return None
    return ("this CPU has bfloat16 instructions: --precision bf16 ran 1.34 times (train) and 1.62 times (adapt) "
            "the steps a minute on 2 such cores (README, Training speed)")
