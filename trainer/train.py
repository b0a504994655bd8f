"""The training loop: read it top to bottom.

One run writes, into its output folder: ``weights.pt`` (the best epoch by validation accuracy,
in the format the middleware loads), ``checkpoint.pt`` (the last epoch, for ``--resume``),
``metrics.json``, ``curves.png`` and ``predictions.png``.

Data-parallel training: start it with ``torchrun --nproc-per-node N -m trainer train ...``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from scrapy_captcha.model import ModelConfig, build_model, count_parameters, decode
from scrapy_captcha.weights import BUNDLED_WEIGHTS, load_weights, save_weights

from .augment import build_augmentation
from .data import Batch, Collate, Curriculum, DataError, LabelledFolder, SyntheticStream, scan_folder, synthetic_samples
from .generate import GeneratorSpec
from .metrics import score
from .plots import plot_curves, plot_predictions
from .precision import autocast, bf16_hint, check_precision
from .surgery import more_frames_per_column


@dataclass
class TrainConfig:
    """Every knob of a run; saved into ``metrics.json`` so a run can be repeated."""

    out: str = "runs/latest"
    train_dir: str | None = None  # None: an endless synthetic stream
    val_dir: str | None = None  # None: a held-out part of train_dir, or a fixed synthetic set
    init: str | None = None  # weights to fine-tune from; "bundled" for the bundled model
    frames_per_column: int | None = None  # with init: its CRNN's head widened to this many frames per column
    resume: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    synthetic: GeneratorSpec = field(default_factory=GeneratorSpec)
    curriculum: tuple[float, float] | None = None  # (start difficulty, share of training to reach 1); synthetic only
    echo: int = 1  # each synthetic image is trained on this many times, freshly augmented each time
    epochs: int = 30
    steps_per_epoch: int = 1000  # for the synthetic stream; folders use their size
    val_size: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps spent warming up (one-cycle)
    patience: int = 0  # epochs without improvement before stopping; 0: never stop early
    max_minutes: float | None = None  # a time budget: the schedule cools down within it
    augment: bool = True
    allow_skip: bool = False
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # "fp32", "bf16" (autocast), "auto": bf16 on a GPU, fp32 on the CPU
    progress: bool = True


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says and return the final metrics."""
    # -- processes and devices -------------------------------------------------------------
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {cfg.epochs}")
    checkpoint_path = Path(cfg.out) / "checkpoint.pt"
    if cfg.echo != 1 and cfg.train_dir:
        raise ValueError("--echo is for the synthetic stream: a folder's images are used once an epoch")
    if cfg.resume and not checkpoint_path.exists():
        raise ValueError(f"--resume: there is no checkpoint at {checkpoint_path}")
    check_precision(cfg.precision)  # before any process group is set up
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    main = rank == 0
    if cfg.device == "auto":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    amp = autocast(cfg.precision, device)
    seed_everything(cfg.seed + rank)
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)

    # -- model, from scratch, from weights to fine-tune, or from a checkpoint --------------
    config = cfg.model
    init_summary: dict[str, Any] = {}
    if cfg.init:
        weights = load_weights(BUNDLED_WEIGHTS if cfg.init == "bundled" else cfg.init)
        if cfg.frames_per_column and cfg.frames_per_column != weights.config.frames_per_column:
            weights = more_frames_per_column(weights, cfg.frames_per_column)
        config, init_summary = weights.config, {"fine_tuned_from": str(cfg.init), **weights.summary}
        model = weights.build(device).train()
    else:
        model = build_model(config).to(device)
    if main:
        print(f"model: {config.arch}, {count_parameters(model):,} parameters, device {device}, {world} process(es)")
        if hint := bf16_hint(cfg.precision, device):
            print(hint)

    # -- data ------------------------------------------------------------------------------
    transform = build_augmentation() if cfg.augment else None
    collate = Collate(config)
    if cfg.train_dir:
        exact = config.head == "one-hot"
        samples = scan_folder(cfg.train_dir, collate.codec, config.max_length, cfg.allow_skip, exact)
        if cfg.val_dir:
            val_items = scan_folder(cfg.val_dir, collate.codec, config.max_length, cfg.allow_skip, exact)
        elif len(samples) < 2:
            raise DataError([(Path(cfg.train_dir), "needs at least 2 images to hold some out for validation (or pass --val)")])
        else:  # hold out a tenth, the same tenth for every run with this seed
            random.Random(cfg.seed).shuffle(samples)
            cut = max(1, len(samples) // 10)
            val_items, samples = samples[:cut], samples[cut:]
        train_set = LabelledFolder(samples, config, transform)
        sampler = DistributedSampler(train_set, seed=cfg.seed) if distributed else None
        loader = DataLoader(train_set, cfg.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=len(train_set) >= cfg.batch_size,
                            num_workers=cfg.workers, collate_fn=collate, persistent_workers=cfg.workers > 0)
        steps_per_epoch = max(1, len(loader))
        val_set = LabelledFolder(val_items, config)
    else:
        spec = cfg.synthetic
        done_steps, done_minutes = resumed_position(checkpoint_path) if cfg.resume else (0, 0.0)
        curriculum = None
        if cfg.curriculum:
            curriculum = Curriculum(*cfg.curriculum, total_images=cfg.epochs * cfg.steps_per_epoch * cfg.batch_size,
                                    max_seconds=cfg.max_minutes * 60 if cfg.max_minutes else None,
                                    started_at=time.time() - done_minutes * 60, images_before=done_steps * cfg.batch_size)
        # a resumed run draws a fresh stream (not the images it already trained on) from where the curriculum was
        train_set = SyntheticStream(spec, config, seed=cfg.seed * 1000 + rank + 7919 * done_steps, transform=transform,
                                    curriculum=curriculum, batch_size=cfg.batch_size, echo=cfg.echo)
        loader = DataLoader(train_set, cfg.batch_size, num_workers=cfg.workers, collate_fn=collate, persistent_workers=cfg.workers > 0)
        steps_per_epoch = cfg.steps_per_epoch
        if cfg.val_dir:
            val_set = LabelledFolder(scan_folder(cfg.val_dir, collate.codec, config.max_length, cfg.allow_skip,
                                                 config.head == "one-hot"), config)
        else:
            val_set = synthetic_samples(spec, config, cfg.val_size, seed=10**6 + cfg.seed) if main else []
    val_loader = DataLoader(val_set, 256, collate_fn=collate, num_workers=0)

    # -- optimiser, loss, and where we are -----------------------------------------------
    total_steps = cfg.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    criterion = Criterion(config)
    step, spent, history, best = 0, 0.0, [], {"sequence_accuracy": -1.0, "epoch": 0}
    if cfg.resume:
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, spent, history, best = state["step"], state["minutes"], state["history"], state["best"]
        if main:
            print(f"resumed at step {step} (best so far {best['sequence_accuracy']:.4f})")
    if device.type == "cpu" and config.arch != "seed-vgg":
        # oneDNN's convolutions run faster on channels-last tensors (the layout only: same weights, same file);
        # the seed's network stays as the notebook ran it, for the benchmark's like-for-like comparison
        model = model.to(memory_format=torch.channels_last)
    if distributed:
        model = DistributedDataParallel(model)

    # -- the loop --------------------------------------------------------------------------
    # Progress runs from 0 to 1 over the steps, or over --max-minutes if that comes first,
    # and drives the one-cycle learning rate: a time budget still ends with a cooled-down model.
    started = time.monotonic() - spent * 60
    batches = iter(loader)
    progress, epoch = 0.0, step // steps_per_epoch
    while progress < 1.0:
        epoch += 1
        if isinstance(getattr(loader, "sampler", None), DistributedSampler):
            loader.sampler.set_epoch(epoch)
        model.train()
        train_loss, seen = 0.0, 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", disable=not (main and cfg.progress), leave=False)
        for _ in range(steps_per_epoch):
            progress = training_progress(step, total_steps, time.monotonic() - started, cfg.max_minutes, distributed, device)
            if progress >= 1.0:
                break
            lr = one_cycle(progress, cfg.lr, cfg.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                batch = next(batches)
            except StopIteration:  # a folder's epoch ended
                batches = iter(loader)
                batch = next(batches)
            with amp:
                logits = model(batch.images.to(device, non_blocking=True))
            loss = criterion(logits, batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            train_loss += loss.item() * len(batch.labels)
            seen += len(batch.labels)
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        bar.close()
        if seen == 0:
            break

        stop = False
        if main:
            minutes = (time.monotonic() - started) / 60
            metrics = validate(unwrap(model), val_loader, criterion, config, device, amp)
            metrics.update(epoch=epoch, step=step, train_loss=train_loss / seen, minutes=minutes, lr=lr)
            history.append(metrics)
            improved = metrics["sequence_accuracy"] > best["sequence_accuracy"]
            if improved:
                best = {"sequence_accuracy": metrics["sequence_accuracy"], "epoch": epoch}
                save_weights(out / "weights.pt", model, config, summary(cfg, metrics, init_summary))
            print(f"epoch {epoch} (step {step}): train loss {metrics['train_loss']:.4f}, val loss {metrics['val_loss']:.4f}, "
                  f"val acc {metrics['sequence_accuracy']:.4f} (case-insensitive {metrics['sequence_accuracy_case_insensitive']:.4f}, "
                  f"chars {metrics['character_accuracy']:.4f}), lr {lr:.2e}, {minutes:.1f} min{' *' if improved else ''}", flush=True)
            save_checkpoint(checkpoint_path, unwrap(model), optimizer, step, minutes, history, best)
            write_metrics(out, cfg, history, best)
            stop = cfg.patience > 0 and epoch - best["epoch"] >= cfg.patience
            if stop:
                print(f"stopping early: no improvement for {cfg.patience} epochs")
        if distributed:
            flag = torch.tensor([int(stop)], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            break

    # -- outputs ---------------------------------------------------------------------------
    final: dict[str, Any] = {}
    if main:
        best_weights = load_weights(out / "weights.pt")
        best_model = best_weights.build(device)
        final = validate(best_model, val_loader, criterion, config, device, amp, keep_predictions=True)
        plot_curves(history, out / "curves.png")
        plot_predictions(final.pop("examples"), out / "predictions.png")
        write_metrics(out, cfg, history, best, final)
        print(f"best epoch {best['epoch']}: val acc {final['sequence_accuracy']:.4f}; outputs in {out}")
    if distributed:
        dist.destroy_process_group()
    return final


class Criterion:
    """CTC for the CRNN, the seed's MultiLabelSoftMarginLoss for its one-hot network."""

    def __init__(self, config: ModelConfig):
        self.one_hot = config.head == "one-hot"
        self.loss = nn.MultiLabelSoftMarginLoss() if self.one_hot else nn.CTCLoss(blank=0, zero_infinity=True)

    def __call__(self, logits: torch.Tensor, batch: Batch, device: torch.device) -> torch.Tensor:
        logits = logits.float()
        if self.one_hot:
            return self.loss(logits, batch.targets.to(device))
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, N, C)
        frames = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long)
        return self.loss(log_probs, batch.targets.to(device), frames, batch.target_lengths)


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, criterion: Criterion, config: ModelConfig, device: torch.device,
             amp: Any, keep_predictions: bool = False) -> dict[str, Any]:
    """Loss and accuracy over the validation set."""
    model.eval()
    total_loss, predicted, truth, examples = 0.0, [], [], []
    for batch in loader:
        with amp:
            logits = model(batch.images.to(device))
        total_loss += criterion(logits, batch, device).item() * len(batch.labels)
        texts = [p.text for p in decode(logits, config)]
        predicted += texts
        truth += batch.labels
        if keep_predictions and len(examples) < 48:
            examples += list(zip(batch.images[: 48 - len(examples)].cpu(), texts, batch.labels))
    metrics: dict[str, Any] = {"val_loss": total_loss / max(len(truth), 1), **score(predicted, truth)}
    if keep_predictions:
        metrics["examples"] = examples
    model.train()
    return metrics


def one_cycle(progress: float, peak: float, warmup: float) -> float:
    """Learning rate at ``progress`` in [0, 1]: linear warm-up from peak/25, then cosine down to peak/1e4."""
    if progress < warmup:
        return peak / 25 + (peak - peak / 25) * progress / warmup
    cooled = (progress - warmup) / max(1e-9, 1 - warmup)
    return peak / 1e4 + (peak - peak / 1e4) * 0.5 * (1 + math.cos(math.pi * cooled))


def training_progress(step: int, total_steps: int, seconds: float, max_minutes: float | None, distributed: bool,
                      device: torch.device) -> float:
    """How far training is, by steps or by the time budget, whichever is further (the same on every rank)."""
    progress = step / total_steps
    if max_minutes:
        progress = max(progress, seconds / (max_minutes * 60))
    if distributed and max_minutes:  # clocks differ a little between processes: agree on the furthest
        shared = torch.tensor([progress], device=device)
        dist.all_reduce(shared, op=dist.ReduceOp.MAX)
        progress = float(shared.item())
    return progress


def resumed_position(checkpoint_path: Path) -> tuple[int, float]:
    """(step, minutes) a checkpoint stopped at: a resumed stream starts afresh there (new images, the curriculum's point)."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return int(state["step"]), float(state["minutes"])


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def summary(cfg: TrainConfig, metrics: dict[str, Any], init_summary: dict[str, Any]) -> dict[str, Any]:
    """What a weights file says about how it was made."""
    keys = ("epoch", "sequence_accuracy", "sequence_accuracy_case_insensitive", "character_accuracy", "val_loss", "minutes")
    return {
        "trained_with": "scrapy-captcha trainer",
        "train_data": cfg.train_dir or f"synthetic {asdict(cfg.synthetic)}",
        "validation": {k: metrics[k] for k in keys if k in metrics},
        "torch": str(torch.__version__),
        **({"init": init_summary} if init_summary else {}),
    }


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, minutes: float,
                    history: list[dict[str, Any]], best: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "minutes": minutes,
                "history": history, "best": best}, tmp)
    os.replace(tmp, path)


def write_metrics(out: Path, cfg: TrainConfig, history: list[dict[str, Any]], best: dict[str, Any],
                  final: dict[str, Any] | None = None) -> None:
    data = {"config": asdict(cfg), "best": best, "history": history, "final": final or {}}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, out / "metrics.json")
