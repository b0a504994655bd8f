"""``python -m trainer adapt DIR --out RUN``: fine-tune a model on what a crawl recorded, mostly without hand labels.

What the folder (see :mod:`scrapy_captcha.recording`) tells us becomes training signal:

* accepted answers and hand labels (``records/labels.tsv``, from ``python -m trainer label``) are
  labels, as are the images of ``--labels`` folders;
* images without a known answer (not submitted, form refused, rejected) are unlabelled data,
  used FixMatch-style: an averaged (EMA) copy of the model, the teacher, reads a lightly augmented
  copy; readings above ``--threshold`` become targets for the student on a strongly augmented copy;
* a rejected answer is known to be wrong: a pseudo-label equal to it (ignoring case, in case the
  site ignores case) is dropped, so it is never a target.

``--balance``, ``--synthetic-share``, ``--rejected-weight`` and ``--align`` help characters the crawl
seldom accepts (:mod:`trainer.adapt_prior`).

A share of the labelled images is held out; accuracy on it is printed before and after. Characters
in labels that the starting model lacks are added to its head (known rows copied, a new row
starting from its look-alike's, ``O`` from ``0``, or else from the mean of the known ones). RUN gets ``weights.pt`` (the teacher, or the student
where it was ahead, at the last evaluation within one held-out image of the best, loadable by ``CAPTCHA_WEIGHTS``), ``checkpoint.pt`` (``--resume``),
``metrics.json``, ``curves.png`` and ``predictions.png``.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from tqdm import tqdm

from scrapy_captcha.answers import AnswerRules, answer_rules
from scrapy_captcha.codec import Codec, LabelError
from scrapy_captcha.image import pad_tensor_batch
from scrapy_captcha.model import ModelConfig, decode
from scrapy_captcha.weights import DEFAULT_MODEL, load_weights, save_weights

from .adapt_data import collect, load_images, split, start_weights
from .adapt_recipe import AdaptConfig, check, learned_rules, recipe
from .adapt_prior import (DistributionAlignment, SyntheticPrior, known_wrong_penalty, label_lengths, repeat_factors,
                          teacher_readings)
from .augment import build_augmentation
from .data import Collate, DataError
from .metrics import score
from .plots import plot_curves, plot_predictions
from .precision import autocast, bf16_hint, uses_bf16
from .surgery import grow_alphabet
from .train import Criterion, one_cycle, seed_everything, validate, write_metrics


def strong_augmentation() -> v2.Compose:
    """Heavier than the trainer's augmentation: what the student must still read like the teacher."""
    return v2.Compose([
        v2.RandomAffine(degrees=6, translate=(0.05, 0.1), scale=(0.88, 1.1), shear=(-10, 10), fill=1.0),
        v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 1.2))], p=0.4),
        v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.5)], p=0.6),
        v2.RandomErasing(p=0.5, scale=(0.01, 0.03), ratio=(0.3, 3.0), value=1.0),
        v2.GaussianNoise(sigma=0.04),
        v2.Lambda(lambda x: x.clamp_(0.0, 1.0)),
    ])


class OnOwnBackground:
    """Applies an augmentation to an image as if its background were white.

    The augmentations fill what shifts, rotations and erasing uncover with white; on a dark
    background with light characters (the demo's ``night`` style) those white patches look like
    strokes. Such images are inverted for the augmentation and back, so the fill matches their
    background."""

    def __init__(self, transform: Any):
        self.transform = transform

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        border = torch.cat([image[..., 0, :], image[..., -1, :], image[..., :, 0], image[..., :, -1]], dim=-1)
        if border.median() < 0.5:
            return 1.0 - self.transform(1.0 - image)
        return self.transform(image)


def keep_pseudo_label(text: str, confidence: float, wrong: frozenset[str], threshold: float, max_length: int) -> bool:
    """Whether a teacher's reading may be a target: confident, readable, and not an answer the site rejected."""
    return bool(text) and confidence >= threshold and len(text) <= max_length and text.casefold() not in wrong


@dataclass
class PseudoLabeller:
    """FixMatch's step: the teacher reads weak views of unlabelled images, and its confident readings (never
    an answer the site rejected) become the targets of strong views. ``counts`` tallies kept and dropped."""

    teacher: nn.Module
    config: ModelConfig
    rules: AnswerRules | None
    align: DistributionAlignment | None
    threshold: float
    weak: Callable[[torch.Tensor], torch.Tensor]
    strong: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    counts: dict[str, int]
    amp: Any = field(default_factory=nullcontext)  # the context the teacher reads in (bfloat16 autocast or nothing)

    @torch.no_grad()
    def __call__(self, images: list[torch.Tensor], wrong: list[frozenset[str]]) -> tuple[list[torch.Tensor], list[str]]:
        views = pad_tensor_batch([self.weak(image.float().div(255)) for image in images])
        with self.amp:
            logits = self.teacher(views.to(self.device))
        readings = teacher_readings(logits.float(), self.config, self.rules, self.align)
        inputs, targets = [], []
        for image, known_wrong, reading in zip(images, wrong, readings):
            max_length = self.config.max_length
            if not (keep_pseudo_label(reading.text, reading.confidence, frozenset(), self.threshold, max_length)
                    and all(c in self.config.alphabet for c in reading.text)):
                self.counts["dropped_low_confidence"] += 1
            elif not keep_pseudo_label(reading.text, reading.confidence, known_wrong, self.threshold, max_length):
                self.counts["dropped_known_wrong"] += 1
            else:
                self.counts["pseudo_labels"] += 1
                inputs.append(self.strong(image.float().div(255)))
                targets.append(reading.text)
        return inputs, targets


@torch.no_grad()
def accuracy(model: nn.Module, config: ModelConfig, images: list[torch.Tensor], labels: list[str],
             device: torch.device) -> dict[str, float]:
    """Sequence and character accuracy of ``model`` on preprocessed images."""
    model.eval()
    texts = []
    for start in range(0, len(images), 256):
        batch = pad_tensor_batch([image.float().div(255) for image in images[start:start + 256]])
        texts += [p.text for p in decode(model(batch.to(device)), config)]
    return score(texts, labels)


def run(cfg: AdaptConfig) -> dict[str, Any]:
    """Adapt as ``cfg`` says; returns the final metrics."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    checkpoint_path = out / "checkpoint.pt"
    if cfg.resume and not checkpoint_path.exists():
        raise ValueError(f"--resume: there is no checkpoint at {checkpoint_path}")
    pool = collect(cfg.folder, cfg.labels)
    start_path = start_weights(cfg.weights or DEFAULT_MODEL, pool)
    start = load_weights(start_path)
    cfg = learned_rules(check(cfg), pool, start.config.alphabet)
    # the site's alphabet grows the model too: the synthetic prior then teaches characters no label holds yet
    weights, new_chars = grow_alphabet(start, [label for _, label, _ in pool.labelled] + [cfg.alphabet or ""])
    config = weights.config
    codec = Codec(config.alphabet)
    rules = (answer_rules(config, cfg.answer_case, cfg.alphabet, cfg.answer_length)
             if cfg.alphabet or cfg.answer_case != "as-is" or cfg.answer_length else None)
    if cfg.align and config.head != "ctc":
        raise ValueError(f"--align works on a CRNN's per-frame readings; the {config.arch} model has none")
    align = DistributionAlignment(len(rules.codec.alphabet if rules else config.alphabet)) if cfg.align else None
    problems = []
    for path, label, _ in pool.labelled:
        try:
            codec.check(label, config.max_length)
        except LabelError as exc:
            problems.append((path, str(exc)))
    if problems:
        raise DataError(problems)
    train_items, held_items = split(pool.labelled, cfg.holdout, cfg.seed)
    if not train_items and not pool.unlabelled:
        raise DataError([(Path(cfg.folder), "has nothing left to train on after holding out the validation images")])
    print(f"{cfg.folder}: {len(pool.labelled)} labelled ({len(held_items)} held out), {len(pool.unlabelled)} unlabelled "
          f"({sum(bool(w) for _, w in pool.unlabelled)} with a rejected answer)"
          + (f"; alphabet grows by {new_chars!r}" if new_chars else ""), flush=True)
    train_images = load_images([p for p, _, _ in train_items], config)
    train_labels = [label for _, label, _ in train_items]
    held_images = load_images([p for p, _, _ in held_items], config)
    held_labels = [label for _, label, _ in held_items]
    unlabelled_images = load_images([p for p, _ in pool.unlabelled], config)
    wrong = [w for _, w in pool.unlabelled]
    rejected = [(i, pool.rejected[path]) for i, (path, _) in enumerate(pool.unlabelled) if path in pool.rejected]
    draw_weights = torch.tensor(repeat_factors(train_labels)) if cfg.balance and train_labels else None
    prior = (SyntheticPrior(cfg.alphabet or "".join(sorted({c for label in train_labels for c in label})),
                            label_lengths(train_labels + held_labels), config, cfg.seed)
             if cfg.synthetic_share > 0 else None)

    before = accuracy(start.build(device), start.config, held_images, held_labels, device) if held_labels else None
    if before:
        print(f"held-out accuracy before: {before['sequence_accuracy']:.3f} ({len(held_labels)} images)", flush=True)
    cfg = recipe(cfg, pool, before["sequence_accuracy"] if before else None)
    print(f"recipe: lr {cfg.lr:g}, {cfg.labelled_augmentation} augmentation of the labelled images, "
          f"first {cfg.supervised_share:.0%} of {cfg.steps} steps on them alone"
          + (f"; alphabet {cfg.alphabet!r}" if cfg.alphabet else "") + ("; balanced" if cfg.balance else "")
          + (f"; answers {cfg.answer_length[0]}-{cfg.answer_length[1]} characters long" if cfg.answer_length else "")
          + (f"; synthetic share {cfg.synthetic_share:g}" if cfg.synthetic_share else "")
          + (f"; rejected-answer penalty {cfg.rejected_weight:g}" if cfg.rejected_weight else "")
          + ("; distribution alignment" if cfg.align else ""), flush=True)
    if hint := bf16_hint(cfg.precision, device):
        print(hint, flush=True)

    student = weights.build(device).train()
    if device.type == "cpu" and uses_bf16(cfg.precision, device):
        # as in `trainer train`: oneDNN's bfloat16 convolutions want channels-last tensors (layout only, same weights)
        student = student.to(memory_format=torch.channels_last)
    teacher = copy.deepcopy(student).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.01)
    criterion, collate = Criterion(config), Collate(config)
    weak, strong = OnOwnBackground(build_augmentation()), OnOwnBackground(strong_augmentation())
    labelled_view = strong if cfg.labelled_augmentation == "strong" else weak
    step, history, best, spent = 0, [], {"sequence_accuracy": -1.0, "step": 0}, 0.0
    counts = {"pseudo_labels": 0, "dropped_low_confidence": 0, "dropped_known_wrong": 0}
    out.mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if state["alphabet"] != config.alphabet:
            raise ValueError(f"--resume: the checkpoint's alphabet {state['alphabet']!r} differs from this folder's {config.alphabet!r}")
        student.load_state_dict(state["student"])
        teacher.load_state_dict(state["teacher"])
        optimizer.load_state_dict(state["optimizer"])
        step, history, best, spent, counts = state["step"], state["history"], state["best"], state["minutes"], state["counts"]
        if align is not None and state.get("align"):
            align.load_state_dict(state["align"])
        print(f"resumed at step {step}", flush=True)
    amp = autocast(cfg.precision, device)
    pseudo_labels = PseudoLabeller(teacher, config, rules, align, cfg.threshold, weak, strong, device, counts, amp)
    val_loader = DataLoader([(image.float().div(255), label) for image, label in zip(held_images, held_labels)], 256, collate_fn=collate)
    rng = torch.Generator().manual_seed(cfg.seed + step)
    started = time.monotonic() - spent * 60
    labelled_batch = min(cfg.batch_size, len(train_labels))
    unlabelled_batch = min(cfg.batch_size * cfg.unlabelled_ratio, len(unlabelled_images))
    bar = tqdm(total=cfg.steps, initial=step, desc="adapt", disable=not cfg.progress)
    loss_sum, loss_count = 0.0, 0
    while step < cfg.steps:
        lr = one_cycle(step / cfg.steps, cfg.lr, 0.1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = [], []
        if labelled_batch:
            if draw_weights is not None:
                chosen = torch.multinomial(draw_weights, labelled_batch, replacement=True, generator=rng).tolist()
            else:
                chosen = torch.randint(len(train_labels), (labelled_batch,), generator=rng).tolist()
            inputs += [labelled_view(train_images[i].float().div(255)) for i in chosen]
            targets += [train_labels[i] for i in chosen]
        if prior is not None:
            drawn, texts = prior.batch(max(1, round(cfg.synthetic_share * max(labelled_batch, 1))))
            inputs += [weak(image) for image in drawn]
            targets += texts
        known = len(inputs)  # labelled and synthetic images: the rest are pseudo-labelled
        if unlabelled_batch and (step >= cfg.supervised_share * cfg.steps or not labelled_batch):
            chosen = torch.randint(len(unlabelled_images), (unlabelled_batch,), generator=rng).tolist()
            views, texts = pseudo_labels([unlabelled_images[i] for i in chosen], [wrong[i] for i in chosen])
            inputs += views
            targets += texts
        if inputs:
            with amp:
                logits = student(pad_tensor_batch(inputs).to(device))
            # one forward pass for both kinds (shared batch statistics), each kind averaged on its own
            loss = torch.zeros((), device=device)
            if known:
                loss = loss + criterion(logits[:known], collate(list(zip(inputs[:known], targets[:known]))), device)
            if len(inputs) > known:
                rest = collate(list(zip(inputs[known:], targets[known:])))
                loss = loss + cfg.unlabelled_weight * criterion(logits[known:], rest, device)
            if cfg.rejected_weight and rejected and config.head == "ctc":
                picked = [rejected[k] for k in torch.randint(len(rejected), (min(cfg.batch_size, len(rejected)),), generator=rng).tolist()]
                with amp:
                    wrong_logits = student(pad_tensor_batch([weak(unlabelled_images[i].float().div(255)) for i, _ in picked]).to(device))
                loss = loss + cfg.rejected_weight * known_wrong_penalty(wrong_logits.float(), [answer for _, answer in picked], codec)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            optimizer.step()
            update_teacher(teacher, student, cfg.ema)
            loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss_sum / max(loss_count, 1):.3f}", pseudo=counts["pseudo_labels"])
        if step % cfg.eval_every == 0 or step == cfg.steps:
            minutes = (time.monotonic() - started) / 60
            metrics = {"epoch": step, "step": step, "train_loss": loss_sum / max(loss_count, 1), "minutes": minutes, "lr": lr, **counts}
            if held_labels:
                metrics.update(validate(teacher, val_loader, criterion, config, device, _no_amp()))
                teacher.eval()
                student_metrics = validate(student, val_loader, criterion, config, device, _no_amp())  # leaves it in train mode
                if student_metrics["sequence_accuracy"] > metrics["sequence_accuracy"]:  # early on the student can lead
                    teacher.load_state_dict(student.state_dict())
                    metrics.update(student_metrics)
            else:
                metrics.update(val_loss=float("nan"), sequence_accuracy=0.0, sequence_accuracy_case_insensitive=0.0, character_accuracy=0.0)
            history.append(metrics)
            loss_sum, loss_count = 0.0, 0
            if not held_labels or no_worse(metrics["sequence_accuracy"], best["sequence_accuracy"], len(held_labels)):
                best = {"sequence_accuracy": max(metrics["sequence_accuracy"], best["sequence_accuracy"]), "step": step}
                save_weights(out / "weights.pt", teacher, config, {
                    "trained_with": "scrapy-captcha trainer adapt", "adapted_from": str(start_path),
                    "folder": str(cfg.folder), "step": step, "held_out_accuracy": metrics["sequence_accuracy"],
                })
            save_checkpoint(checkpoint_path, student, teacher, optimizer, config, step, minutes, history, best, counts,
                            align.state_dict() if align else None)
            write_metrics(out, cfg, history, best)  # type: ignore[arg-type]  # any dataclass
    bar.close()

    final: dict[str, Any] = {"before": before, "new_characters": new_chars, "labelled": len(pool.labelled),
                             "held_out": len(held_labels), "unlabelled": len(pool.unlabelled), **counts}
    adapted = load_weights(out / "weights.pt").build(device)
    if held_labels:
        result = validate(adapted, val_loader, criterion, config, device, _no_amp(), keep_predictions=True)
        plot_predictions(result.pop("examples"), out / "predictions.png")
        final["after"] = result
        print(f"held-out accuracy after:  {result['sequence_accuracy']:.3f} (before {before['sequence_accuracy']:.3f}); "
              f"best at step {best['step']}", flush=True)
    plot_curves(history, out / "curves.png")
    final["minutes"] = (time.monotonic() - started) / 60
    write_metrics(out, cfg, history, best, final)  # type: ignore[arg-type]
    print(f"pseudo-labels used {counts['pseudo_labels']}, dropped: {counts['dropped_low_confidence']} unsure, "
          f"{counts['dropped_known_wrong']} equal to a rejected answer; weights in {out / 'weights.pt'}", flush=True)
    return final


def no_worse(accuracy: float, best: float, held_out: int) -> bool:
    """Whether later weights reading ``accuracy`` of ``held_out`` images replace the saved ones, whose best was ``best``.

    Within one image of the best counts: on a few dozen held-out labels one image is noise, and the
    later weights have trained longer (README, "Hand labels from a start that reads the site")."""
    return accuracy >= best - 1 / held_out - 1e-9


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """Exponential moving average of the student's weights; batch-norm statistics copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


def save_checkpoint(path: Path, student: nn.Module, teacher: nn.Module, optimizer: torch.optim.Optimizer, config: ModelConfig,
                    step: int, minutes: float, history: list, best: dict, counts: dict, align: dict | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"student": student.state_dict(), "teacher": teacher.state_dict(), "optimizer": optimizer.state_dict(),
                "alphabet": config.alphabet, "step": step, "minutes": minutes, "history": history, "best": best,
                "counts": counts, "align": align}, tmp)
    tmp.replace(path)


def _no_amp() -> Any:
    """Held-out evaluations run in float32 whatever the precision: they choose the weights kept."""
    return nullcontext()
