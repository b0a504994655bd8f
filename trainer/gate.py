"""Train the style gate of a route: which of two models should read an image.

The bundled route (``CAPTCHA_WEIGHTS = "auto"``) sends the ``captcha`` library's styles, drawn
with its own font, to the default model, which reads them best, and everything else to the
generalist. The gate learns that split from our renderer alone (held-out honesty: no image of
another captcha package):

- **the first model's styles** (label 1): the ``0.7`` and ``0.5`` families with the library's font
  and the seed task's texts, what the default model was trained on;
- **anything else** (label 0): our ``plain``, ``styled`` and ``arithmetic`` families at every
  difficulty; half of the first two draw the seed task's texts (4 characters), the rest 1 to 12.

The library's styles drawn with other fonts are no negatives: tried as such (15% of the images), they
pulled the gate's reading of the library's own styles down from 97% to 81% of validation images
within three epochs, as many of those fonts look like the library's at 32 pixels high.

Read top to bottom: draw a fixed set in parallel, train a few epochs, score a second, freshly drawn
set per family, save ``weights.pt`` (its ``summary`` holds those scores).
"""

from __future__ import annotations

import io
import math
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.config import ModelConfig
from scrapy_captcha.image import pad_batch, to_array
from scrapy_captcha.model import build_model, count_parameters
from scrapy_captcha.weights import save_weights

from .render import TextSpec, build_drawer
from .render.base import ARITHMETIC_SYMBOLS, GENERALIST_ALPHABET
from .render.captcha_lib import CaptchaLibRenderer

#: The gate's input: the bundled models' own (grey, 48 pixels high, any width), so that a route
#: prepares each image once for the gate and the model it picks.
GATE_MODEL = ModelConfig(arch="style-gate", channels=1, height=48, resize="height", min_width=32, max_width=800,
                         widths=(8, 16, 32, 32))
#: Shares of the drawn images: family -> (share, label). Half the images are the first model's styles.
GATE_MIX = {"0.7": (0.25, 1), "0.5": (0.25, 1), "plain": (0.15, 0), "styled": (0.25, 0), "arithmetic": (0.1, 0)}
SEED_TEXT = TextSpec(SEED_ALPHABET, (4, 4))
OTHER_TEXT = TextSpec("".join(c for c in GENERALIST_ALPHABET if c not in ARITHMETIC_SYMBOLS), (1, 12))


@dataclass
class GateConfig:
    out: str
    images: int = 24000
    val_images: int = 2000
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    workers: int = 2
    seed: int = 1


class _Families:
    """Draws one image of a named family of :data:`GATE_MIX`."""

    def __init__(self) -> None:
        self.drawers = {name: build_drawer(name, OTHER_TEXT) for name in ("plain", "styled", "arithmetic")}
        self.library = {style: CaptchaLibRenderer(style) for style in ("0.7", "0.5")}

    def draw(self, family: str, rng: random.Random) -> bytes:
        if family in self.library:
            image = self.library[family].render(self.library[family].text(rng, SEED_TEXT), rng)
        else:  # half of them the seed task's texts, so that the gate cannot go by a text's length alone
            drawer = self.drawers[family]
            drawer.difficulty = rng.random()
            renderer = drawer.families[0]
            text = renderer.text(rng, SEED_TEXT if rng.random() < 0.5 and family != "arithmetic" else OTHER_TEXT)
            image = renderer.render(text, rng, drawer.difficulty)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG")  # through PNG bytes, as the runtime gets them
        return buffer.getvalue()


_FAMILIES: _Families | None = None


def _draw_chunk(args: tuple[int, int, int]) -> list[tuple[str, np.ndarray]]:
    global _FAMILIES
    start, count, seed = args
    _FAMILIES = _FAMILIES or _Families()
    names = list(GATE_MIX)
    shares = [GATE_MIX[name][0] for name in names]
    out = []
    for index in range(start, start + count):
        rng = random.Random(seed * 1_000_003 + index)
        family = rng.choices(names, weights=shares)[0]
        out.append((family, to_array(_FAMILIES.draw(family, rng), GATE_MODEL)))
    return out


def draw_set(count: int, seed: int, workers: int) -> list[tuple[str, np.ndarray]]:
    """``count`` (family, input array) pairs, the same for a seed whatever ``workers``."""
    chunk = 500
    jobs = [(start, min(chunk, count - start), seed) for start in range(0, count, chunk)]
    if workers <= 1:
        return [pair for job in jobs for pair in _draw_chunk(job)]
    with ProcessPoolExecutor(workers) as pool:
        return [pair for part in pool.map(_draw_chunk, jobs) for pair in part]


def _batches(items: list[tuple[str, np.ndarray]], size: int, rng: random.Random | None):
    order = list(range(len(items)))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        chosen = [items[i] for i in order[start:start + size]]
        x = torch.from_numpy(pad_batch([array for _, array in chosen]))
        y = torch.tensor([float(GATE_MIX[family][1]) for family, _ in chosen])
        yield x, y, [family for family, _ in chosen]


def score(model: nn.Module, items: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    """The share of each family the gate labels right (threshold 0.5), and of all."""
    model.eval()
    right: dict[str, list[bool]] = {}
    with torch.inference_mode():
        for x, y, families in _batches(items, 256, None):
            for family, ok in zip(families, ((model(x) > 0).float() == y).tolist()):
                right.setdefault(family, []).append(ok)
    scores = {family: sum(oks) / len(oks) for family, oks in sorted(right.items())}
    scores["all"] = sum(sum(oks) for oks in right.values()) / sum(len(oks) for oks in right.values())
    return scores


def train_gate(cfg: GateConfig) -> Path:
    """Draw, train and save the gate; returns the weights file."""
    torch.manual_seed(cfg.seed)
    started = time.monotonic()
    train_items = draw_set(cfg.images, cfg.seed, cfg.workers)
    val_items = draw_set(cfg.val_images, cfg.seed + 10_000, cfg.workers)
    print(f"drew {len(train_items)} training and {len(val_items)} validation images in "
          f"{time.monotonic() - started:.0f} s", flush=True)

    model = build_model(GATE_MODEL)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * math.ceil(len(train_items) / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, cfg.lr, total_steps=steps, pct_start=0.1)
    rng = random.Random(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for x, y, _ in _batches(train_items, cfg.batch_size, rng):
            loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        scores = score(model, val_items)
        print(f"epoch {epoch}/{cfg.epochs}: loss {sum(losses) / len(losses):.4f}, validation "
              + ", ".join(f"{family} {value:.2%}" for family, value in scores.items()), flush=True)

    summary = {"trained_with": "scrapy-captcha trainer gate", "images": cfg.images, "epochs": cfg.epochs,
               "seed": cfg.seed, "mix": {k: list(v) for k, v in GATE_MIX.items()}, "validation": scores,
               "parameters": count_parameters(model), "minutes": round((time.monotonic() - started) / 60, 2)}
    path = save_weights(Path(cfg.out) / "weights.pt", model, GATE_MODEL, summary)
    print(f"wrote {path} ({summary['parameters']} parameters, {summary['minutes']} min)")
    return path
