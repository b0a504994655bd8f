"""CAPTCHA_ANSWER_LENGTH: CTC readings kept to the site's answer length by a constrained best path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scrapy_captcha.answers import answer_rules
from scrapy_captcha.codec import Codec, Prediction, best_path_of_length, log_softmax
from scrapy_captcha.config import ModelConfig
from scrapy_captcha.errors import CaptchaSettingsError
from scrapy_captcha.settings import read_answer_length


def collapse(path) -> list[int]:
    out, previous = [], 0
    for k in path:
        if k and k != previous:
            out.append(k)
        previous = k
    return out


def test_the_constrained_path_is_the_best_of_every_path_of_an_allowed_length():
    rng = np.random.default_rng(0)
    for _ in range(200):
        frames, classes = int(rng.integers(2, 7)), int(rng.integers(2, 5))
        log_probs = log_softmax(rng.normal(0, 2, (frames, classes)))
        shortest, longest = sorted(int(n) for n in rng.integers(0, 4, 2))
        allowed = [path for path in itertools.product(range(classes), repeat=frames)
                   if shortest <= len(collapse(path)) <= longest]
        got = best_path_of_length(log_probs, shortest, longest)
        if not allowed:
            assert got is None
            continue
        best = max(log_probs[np.arange(frames), path].sum() for path in allowed)
        assert shortest <= len(collapse(got)) <= longest
        assert log_probs[np.arange(frames), got].sum() == pytest.approx(best, abs=1e-9)


def frames_of(probabilities: list[dict[str, float]], alphabet: str) -> np.ndarray:
    """Logits of one image from per-frame probabilities ('-' the blank; the rest shared evenly)."""
    rows = []
    for frame in probabilities:
        row = np.full(len(alphabet) + 1, (1 - sum(frame.values())) / (len(alphabet) + 1 - len(frame)))
        for char, p in frame.items():
            row[0 if char == "-" else 1 + alphabet.index(char)] = p
        rows.append(np.log(row))
    return np.array(rows, dtype=np.float32)[None]


def test_a_reading_of_the_wrong_length_takes_the_best_allowed_path():
    codec = Codec("ABIL")
    # greedy reads "AL": the frame between holds a blank, with "I" a close second
    logits = frames_of([{"A": 0.9}, {"-": 0.5, "I": 0.45}, {"L": 0.9}, {"-": 0.9}], codec.alphabet)
    greedy = codec.decode_ctc(logits)[0]
    assert greedy.text == "AL"
    kept = codec.decode_ctc_length(logits, (3, 3))[0]
    assert kept.text == "AIL" and kept.confidence == pytest.approx(greedy.confidence * 0.45 / 0.5, rel=1e-4)
    assert kept.char_confidences == pytest.approx((0.9, 0.45, 0.9), rel=1e-4)
    assert codec.decode_ctc_length(logits, (2, 4))[0] == greedy  # already allowed: the greedy reading, as it was
    assert codec.decode_ctc_length(logits, (5, 6))[0] == Prediction("", 0.0, ())  # 4 frames cannot hold 5 characters


def test_answer_length_setting_and_rules():
    assert read_answer_length(None) is None and read_answer_length("") is None
    assert read_answer_length(4) == read_answer_length("4") == (4, 4)
    assert read_answer_length(" 4-6 ") == read_answer_length((4, 6)) == (4, 6)
    for bad in ("four", "4-", "0", "6-4", 2.5j):
        with pytest.raises(CaptchaSettingsError, match="CAPTCHA_ANSWER_LENGTH"):
            read_answer_length(bad)
    ctc = ModelConfig(arch="crnn", alphabet="ABIL", max_length=6)
    rules = answer_rules(ctc, "as-is", None, (3, 3))  # the alphabet unchanged: rules for the length alone
    assert rules.matrix is None and rules.lengths == (3, 3) and rules.codec.alphabet == "ABIL"
    logits = frames_of([{"A": 0.9}, {"-": 0.5, "I": 0.45}, {"L": 0.9}, {"-": 0.9}], "ABIL")
    assert rules.decode(logits, ctc)[0].text == "AIL"
    folded = answer_rules(ModelConfig(arch="crnn", alphabet="ABILabil", max_length=6), "upper", None, (3, 3))
    assert folded.matrix is not None and folded.lengths == (3, 3)
    assert answer_rules(ctc, "as-is", None, (4, 9)).lengths == (4, 6)  # no longer than the model reads
    with pytest.raises(CaptchaSettingsError, match="reads at most 6"):
        answer_rules(ctc, "as-is", None, (7, 8))
    one_hot = ModelConfig(arch="seed-vgg", max_length=4)
    assert answer_rules(one_hot, "as-is", None, (4, 4)) is None  # its length is fixed already
    with pytest.raises(CaptchaSettingsError, match="leaves out the only length"):
        answer_rules(one_hot, "as-is", None, (5, 6))
