"""``trainer adapt``'s remedies for rare characters: balanced draws, the synthetic prior, the rejected-answer
penalty, and the site's alphabet and case for the teacher's readings."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from scrapy_captcha.codec import Codec
from scrapy_captcha.model import ModelConfig, build_model
from scrapy_captcha.recording import ACCEPTED, NOT_SUBMITTED, REJECTED, Recorder
from scrapy_captcha.weights import save_weights
from trainer import adapt as adapt_module
from trainer.adapt import AdaptConfig, run
from trainer.adapt_data import collect
from trainer.adapt_prior import (DistributionAlignment, SyntheticPrior, known_wrong_penalty, label_lengths, repeat_factors,
                                 teacher_readings)


def test_repeat_factors_draw_rare_characters_more_often():
    labels = ["ABCD", "ABCE", "ABCF", "ABCG", "ABCI", "ABCD", "ABCE", "ABCF"]
    factors = repeat_factors(labels)
    # shares: A, B, C 8/8; D, E, F 2/8; G, I 1/8; median share 2/8 -> sqrt(2) for G and I, 1 for the rest
    assert factors[:4] == [1.0, 1.0, 1.0, pytest.approx(2 ** 0.5)]
    assert factors[4] == pytest.approx(2 ** 0.5) and factors[5:] == [1.0, 1.0, 1.0]
    assert repeat_factors([]) == []


def test_the_synthetic_prior_draws_the_alphabet_at_the_labels_lengths():
    config = ModelConfig(arch="crnn", alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abc", max_length=6)
    prior = SyntheticPrior("IJL", label_lengths(["IJLL", "JJJ"]), config, seed=1)
    images, texts = prior.batch(12)
    assert len(images) == len(texts) == 12
    assert all(set(text) <= set("IJL") and 3 <= len(text) <= 4 for text in texts)
    assert {c for text in texts for c in text} == set("IJL")
    assert all(image.shape == (1, config.height, config.width) and 0.0 <= image.min() <= image.max() <= 1.0 for image in images)
    with pytest.raises(ValueError, match="cannot write: 'ß'"):
        SyntheticPrior("Aß", (4, 4), config)


def test_the_known_wrong_penalty_pushes_the_rejected_answer_down():
    codec = Codec("ABIJL")
    torch.manual_seed(0)
    logits = torch.randn(2, 12, 6, requires_grad=True)  # 2 images, 12 frames, blank + 5 characters
    optimizer = torch.optim.SGD([logits], lr=1.0)

    def probability(answer: str, image: int) -> float:
        log_probs = logits.detach()[image:image + 1].log_softmax(-1).transpose(0, 1)
        nll = torch.nn.functional.ctc_loss(log_probs, torch.tensor(codec.encode(answer)), torch.tensor([12]), torch.tensor([len(answer)]),
                                           reduction="sum")
        return float((-nll).exp())

    with torch.no_grad():  # make "ABJL" the first image's likely reading: its characters on 4 frames, blanks between
        logits[0, :, 0] += 6.0
        for frame, char in zip((1, 4, 7, 10), "ABJL"):
            logits[0, frame, 1 + codec.alphabet.index(char)] += 10.0
            logits[0, frame, 1 + codec.alphabet.index("I")] += 7.0 if char == "J" else 0.0  # "ABIL" the runner-up
    before = probability("ABJL", 0), probability("ABIL", 0)
    first = known_wrong_penalty(logits, ["ABJL", "ß"], codec)  # the second answer cannot be encoded: it counts zero
    assert before[0] > 0.1 and first.item() == pytest.approx(-math.log1p(-before[0]), rel=1e-4)
    for _ in range(20):
        optimizer.zero_grad()
        known_wrong_penalty(logits, ["ABJL", "ß"], codec).backward()
        optimizer.step()
    after = probability("ABJL", 0), probability("ABIL", 0)
    assert after[0] < before[0] / 5 and after[1] > before[1]  # the next reading moves up
    assert known_wrong_penalty(logits, ["ABJL", "ß"], codec).item() < first.item() / 5
    assert known_wrong_penalty(logits, ["ß", ""], codec).item() == 0.0


def test_distribution_alignment_lets_an_under_read_character_win_its_close_frames():
    codec = Codec("IL")  # classes: blank, I, L
    frame = {"blank": [0.9, 0.05, 0.05], "clear L": [0.04, 0.01, 0.95], "close": [0.1, 0.35, 0.55]}
    images = [[frame["clear L"], frame["blank"], frame["clear L"]]] * 6 + [[frame["close"], frame["blank"], frame["clear L"]]]
    probs = torch.tensor(images)  # 7 images, 3 frames: L read everywhere, I at most a close second
    assert [p.text for p in codec.decode_ctc(probs.log())][-1] == "LL"
    align = DistributionAlignment(2)
    aligned = align(probs)
    assert align.marginal[1] > 4 * align.marginal[0]  # L holds most of the readings' character probability
    assert torch.allclose(aligned.sum(-1), torch.ones(7, 3)) and torch.equal(aligned[..., 0], probs[..., 0])  # blanks as they were
    readings = [p.text for p in codec.decode_ctc(aligned.log())]
    assert readings[-1] == "IL" and readings[0] == "LL"  # the close frame flips, the clear ones do not
    restored = DistributionAlignment(2)
    restored.load_state_dict(align.state_dict())
    assert torch.equal(restored.marginal, align.marginal)
    # the same through the teacher's path (no answer rules here)
    config = ModelConfig(arch="crnn", alphabet="IL", max_length=4)
    logits = probs.log()
    assert [p.text for p in teacher_readings(logits, config, None)][-1] == "LL"
    assert [p.text for p in teacher_readings(logits, config, None, DistributionAlignment(2))][-1] == "IL"


@pytest.fixture
def lopsided_recording(tmp_path) -> tuple[Path, Path]:
    """A tiny model (alphabet a-h plus capitals) and a recording whose accepted answers never hold 'H'."""
    from captcha.image import ImageCaptcha

    config = ModelConfig(alphabet="abcdefghABCDEFGH", resize="height", height=32, hidden=16, max_length=6)
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "tiny.pt", build_model(config), config)
    recorder, rng = Recorder(tmp_path / "recording"), random.Random(0)
    for index in range(24):
        text = "".join(rng.choice("ABCDEFG") for _ in range(4))
        png = ImageCaptcha(width=160, height=60).generate(text).getvalue()
        if index < 12:
            recorder.record(png, ACCEPTED, text, 0.9, "http://site/", text)
        elif index < 18:
            recorder.record(png, REJECTED, "ABCH", 0.5, "http://site/", "ABCH")
        else:
            recorder.record(png, NOT_SUBMITTED, "ab", 0.01, "http://site/", None)
    return weights, tmp_path / "recording"


def test_adapt_keeps_the_teacher_to_the_sites_alphabet_and_draws_synthetic_captchas(lopsided_recording, tmp_path, monkeypatch,
                                                                                     one_thread):
    weights, folder = lopsided_recording
    assert set(collect(folder).rejected.values()) == {"ABCH"}
    targets: list[str] = []

    class Watching(adapt_module.Collate):
        def __call__(self, items):
            targets.extend(label for _, label in items)
            return super().__call__(items)

    penalties: list[float] = []
    real_penalty = adapt_module.known_wrong_penalty

    def watched_penalty(logits, answers, codec):
        penalties.append(len(answers))
        return real_penalty(logits, answers, codec)

    drawn: list[str] = []

    class WatchedPrior(SyntheticPrior):
        def batch(self, count):
            images, texts = super().batch(count)
            drawn.extend(texts)
            return images, texts

    monkeypatch.setattr(adapt_module, "Collate", Watching)
    monkeypatch.setattr(adapt_module, "known_wrong_penalty", watched_penalty)
    monkeypatch.setattr(adapt_module, "SyntheticPrior", WatchedPrior)
    final = run(AdaptConfig(folder=str(folder), out=str(tmp_path / "run"), weights=str(weights), steps=6, batch_size=4,
                            unlabelled_ratio=2, threshold=0.0, holdout=0.2, eval_every=3, lr=1e-3, progress=False,
                            alphabet="ABCDEFGH", answer_case="upper", balance=True, synthetic_share=1.0, rejected_weight=0.5,
                            align=True))
    assert final["pseudo_labels"] > 0, "no teacher reading became a target: the alphabet went untested"
    # threshold 0: every reading the untrained teacher makes is a target, yet only capitals of the site's alphabet
    assert targets and all(set(t) <= set("ABCDEFGH") for t in targets)
    assert len(drawn) == 6 * 4 and set(drawn) <= set(targets)  # synthetic_share 1: one per labelled image of a step
    assert any("H" in t for t in drawn) and all(set(t) <= set("ABCDEFGH") for t in drawn)  # no label holds 'H'
    assert penalties == [4] * 6  # every step, a batch of rejected answers (6 recorded, batch 4)
    marginal = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["align"]["marginal"]
    assert marginal.shape == (8,) and marginal.sum().item() == pytest.approx(1.0)  # aligned over the site's 8 capitals


def test_adapt_in_bfloat16_trains_through_every_path_and_keeps_float32_weights(lopsided_recording, tmp_path, monkeypatch,
                                                                              one_thread):
    weights, folder = lopsided_recording
    dtypes: set[torch.dtype] = set()

    class Watching(adapt_module.Criterion):
        def __call__(self, logits, batch, device):
            dtypes.add(logits.dtype)
            return super().__call__(logits, batch, device)

    monkeypatch.setattr(adapt_module, "Criterion", Watching)
    final = run(AdaptConfig(folder=str(folder), out=str(tmp_path / "run"), weights=str(weights), steps=4, batch_size=4,
                            unlabelled_ratio=2, threshold=0.0, holdout=0.2, eval_every=2, progress=False, alphabet="ABCDEFGH",
                            synthetic_share=1.0, rejected_weight=0.5, align=True, precision="bf16"))
    # the student's forward passes in bfloat16, the held-out evaluations (which choose the weights kept) in float32
    assert dtypes == {torch.bfloat16, torch.float32}
    assert final["pseudo_labels"] + final["dropped_low_confidence"] > 0  # the teacher read in bfloat16 too
    assert "sequence_accuracy" in final["after"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(math.isfinite(row["train_loss"]) for row in metrics["history"])
    saved = torch.load(tmp_path / "run" / "weights.pt", weights_only=False)["state_dict"]
    assert {tensor.dtype for tensor in saved.values() if tensor.is_floating_point()} == {torch.float32}
    # and it resumes in bfloat16 from its checkpoint
    again = run(AdaptConfig(folder=str(folder), out=str(tmp_path / "run"), weights=str(weights), steps=6, batch_size=4,
                            unlabelled_ratio=2, threshold=0.0, holdout=0.2, eval_every=2, progress=False, alphabet="ABCDEFGH",
                            precision="bf16", resume=True))
    assert "sequence_accuracy" in again["after"]


def test_adapt_rejects_bad_prior_options(lopsided_recording, tmp_path):
    weights, folder = lopsided_recording
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, not 'fp16'"):
        run(AdaptConfig(folder=str(folder), out=str(tmp_path / "p"), weights=str(weights), steps=1, precision="fp16", progress=False))
    assert not (tmp_path / "p").exists()
    with pytest.raises(ValueError, match="answer_case"):
        run(AdaptConfig(folder=str(folder), out=str(tmp_path / "a"), weights=str(weights), steps=1, answer_case="title", progress=False))
    with pytest.raises(ValueError, match="--align needs --alphabet"):
        run(AdaptConfig(folder=str(folder), out=str(tmp_path / "c"), weights=str(weights), steps=1, align=True, progress=False))
    with pytest.raises(ValueError, match="negative"):
        run(AdaptConfig(folder=str(folder), out=str(tmp_path / "b"), weights=str(weights), steps=1, synthetic_share=-1, progress=False))
