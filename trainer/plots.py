"""Figures of a run: loss and accuracy curves, and a grid of validation predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Loss (train and validation) and validation accuracy per epoch, side by side."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss", yscale="log")
    acc_ax.plot(epochs, [h["sequence_accuracy"] for h in history], marker="o", label="captcha")
    acc_ax.plot(epochs, [h["sequence_accuracy_case_insensitive"] for h in history], marker="o", label="captcha, any case")
    acc_ax.plot(epochs, [h["character_accuracy"] for h in history], marker="o", label="character")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="Accuracy", ylim=(0, 1.01))
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_predictions(examples: Sequence[tuple[torch.Tensor, str, str]], path: Path, columns: int = 6) -> None:
    """Images with the predicted text above; wrong ones in red with the truth."""
    rows = max(1, -(-len(examples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, predicted, truth) in zip(axes.flat, examples):
        ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
        ok = predicted == truth
        ax.set_title(predicted if ok else f"{predicted} ({truth})", color="green" if ok else "red", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
