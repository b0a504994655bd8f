"""The trainer's two speed knobs for a few CPU cores: ``--echo`` (each drawn image trained on N times,
freshly augmented, never twice in one batch) and ``--precision bf16`` (bfloat16 autocast, float32
weights). What they buy is measured in ``benchmarks/train_speed.py``, never timed here.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import nullcontext

import pytest
import torch
from PIL import Image

from scrapy_captcha.model import ModelConfig
from scrapy_captcha.solver import Solver
from scrapy_captcha.weights import load_weights
from trainer import cli
from trainer.augment import build_augmentation
from trainer.data import SyntheticStream
from trainer.generate import GeneratorSpec
from trainer.render import GENERALIST_ALPHABET
from trainer.precision import autocast
from trainer.train import TrainConfig, run

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = ModelConfig(alphabet=GENERALIST_ALPHABET, height=32, resize="height", max_length=12)
SPEC = GeneratorSpec(style="styled", alphabet=GENERALIST_ALPHABET, lengths=(6, 12))


def batches(stream: SyntheticStream, count: int, size: int = 8) -> list[list[tuple[torch.Tensor, str]]]:
    items = iter(stream)
    return [[next(items) for _ in range(size)] for _ in range(count)]


def test_echo_trains_on_each_drawn_image_n_times_never_twice_in_a_batch():
    # pools of 4 batches: each image comes in two successive pools; 12 batches hold the first 5 pools' images
    stream = SyntheticStream(SPEC, CONFIG, seed=3, transform=build_augmentation(), batch_size=8, pool_batches=4, echo=2)
    drawn = batches(stream, 12)
    labels = Counter(label for batch in drawn for _, label in batch)
    first_pool = [label for batch in drawn[:4] for _, label in batch]
    assert all(labels[label] == 2 for label in first_pool)  # 6 to 12 random characters: labels are unique
    assert all(len({label for _, label in batch}) == len(batch) for batch in drawn)
    copies: dict[str, list[torch.Tensor]] = {}
    for batch in drawn:
        for image, label in batch:
            copies.setdefault(label, []).append(image)
    pairs = [images for images in copies.values() if len(images) == 2]
    # augmented afresh each time: most copies differ (some draws apply no augmentation to either)
    assert sum(a.shape != b.shape or not torch.equal(a, b) for a, b in pairs) > len(pairs) // 2


def test_without_echo_no_image_comes_twice():
    stream = SyntheticStream(SPEC, CONFIG, seed=3, batch_size=8, pool_batches=2)
    labels = [label for batch in batches(stream, 8) for _, label in batch]
    assert len(set(labels)) == len(labels)


def test_echo_without_width_batching_still_spreads_the_copies():
    fixed = ModelConfig(alphabet=GENERALIST_ALPHABET, height=32, width=96, max_length=12)
    stream = SyntheticStream(SPEC, fixed, seed=3, batch_size=None, pool_batches=2, echo=3)
    labels = [label for batch in batches(stream, 48) for _, label in batch]  # 128 fresh a pool: pools 1 and 2
    first, counts = labels[:128], Counter(labels)
    assert len(set(first)) == 128  # the first pool holds each drawn image once, shuffled
    assert all(counts[label] == 2 for label in first)  # the second pool has them again, among 128 new ones
    assert len(counts) == 256
    with pytest.raises(ValueError, match="echo"):
        SyntheticStream(SPEC, fixed, seed=3, echo=0)


def test_precision_picks_bfloat16_autocast_or_nothing():
    cpu, model = torch.device("cpu"), torch.nn.Linear(4, 2)
    assert isinstance(autocast("auto", cpu), nullcontext) and isinstance(autocast("fp32", cpu), nullcontext)
    with autocast("bf16", cpu):
        assert model(torch.ones(1, 4)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        autocast("fp16", cpu)


def test_a_float32_run_on_a_cpu_with_bfloat16_instructions_says_what_bf16_would_give(tmp_path, capsys, monkeypatch):
    import trainer.precision

    cpu = torch.device("cpu")
    assert isinstance(trainer.precision.cpu_has_bf16(), bool)  # this machine's answer, whichever it is
    monkeypatch.setattr(trainer.precision, "cpu_has_bf16", lambda: True)
    assert "--precision bf16 ran 1.34 times (train) and 1.62 times (adapt)" in trainer.precision.bf16_hint("auto", cpu)
    # an explicit choice, a GPU (where auto is bf16 already) and a CPU without the instructions get no hint
    assert trainer.precision.bf16_hint("fp32", cpu) is None and trainer.precision.bf16_hint("bf16", cpu) is None
    assert trainer.precision.bf16_hint("auto", torch.device("cuda")) is None
    args = ["train", "--out", str(tmp_path / "run"), "--style", "styled", "--alphabet", "generalist", "--length", "2-4",
            "--resize", "height", "--input-height", "32", "--hidden", "16", "--batch-size", "4", "--val-size", "4",
            "--steps-per-epoch", "1", "--epochs", "1", "--workers", "0", "--no-progress"]
    assert cli.main(args) == 0
    assert "this CPU has bfloat16 instructions" in capsys.readouterr().out
    monkeypatch.setattr(trainer.precision, "cpu_has_bf16", lambda: False)
    assert trainer.precision.bf16_hint("auto", cpu) is None


def test_a_bad_precision_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, not 'fp16'"):
        run(TrainConfig(out=str(tmp_path / "run"), precision="fp16"))
    assert not (tmp_path / "run").exists()


def test_a_bf16_echo_run_saves_float32_weights_that_solve_and_resume(tmp_path, capsys):
    out = tmp_path / "fast"
    args = ["train", "--out", str(out), "--style", "generalist", "--alphabet", "generalist", "--length", "1-12",
            "--max-length", "12", "--resize", "height", "--input-height", "40", "--hidden", "32", "--batch-size", "8",
            "--val-size", "12", "--steps-per-epoch", "3", "--workers", "1", "--no-progress", "--seed", "0",
            "--precision", "bf16", "--echo", "2"]
    assert cli.main([*args, "--epochs", "2"]) == 0, capsys.readouterr()
    saved = json.loads((out / "metrics.json").read_text())
    assert (saved["config"]["precision"], saved["config"]["echo"]) == ("bf16", 2)
    weights = load_weights(out / "weights.pt")
    assert all(tensor.dtype == torch.float32 for tensor in weights.state_dict.values() if tensor.is_floating_point())
    assert all(tensor.is_contiguous() for tensor in weights.state_dict.values())  # trained channels-last, saved plain
    assert len(Solver(weights).solve_batch([Image.new("RGB", (90, 40), "white")])) == 1
    assert cli.main([*args, "--epochs", "3", "--resume"]) == 0
    assert "resumed at step 6" in capsys.readouterr().out


def test_echo_is_refused_for_a_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert cli.main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--echo", "2"]) == 2
    assert "--echo is for the synthetic stream" in capsys.readouterr().err
