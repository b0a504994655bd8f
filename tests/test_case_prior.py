"""One case a captcha: a letter the model is unsure of takes the case of the reading's other letters."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from scrapy_captcha import BUNDLED_WEIGHTS
from scrapy_captcha.case_prior import CasePrior, case_twin
from scrapy_captcha.codec import Codec
from scrapy_captcha.weights import WeightsError

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def logits_of(text: str, twin_shares: dict[int, float] | None = None, case: str = "upper") -> np.ndarray:
    """``(1, T, C)`` logits whose greedy reading is ``text``: a frame per character, then a blank frame; at the
    characters named in ``twin_shares``, the twin of ``case`` gets that share of the character's probability."""
    index = {char: position + 1 for position, char in enumerate(ALPHABET)}
    frames = np.full((2 * len(text), len(ALPHABET) + 1), -20.0, dtype=np.float32)
    for position, char in enumerate(text):
        frames[2 * position, index[char]] = 0.0
        share = (twin_shares or {}).get(position)
        if share is not None:
            frames[2 * position, index[case_twin(char, case)]] = math.log(share)
        frames[2 * position + 1, 0] = 0.0
    return frames[None]


def read(prior: CasePrior, logits: np.ndarray) -> str:
    return Codec(ALPHABET).decode_ctc(prior.apply(logits))[0].text


def test_twins_are_the_other_case_and_the_bar_is_i_or_l():
    assert case_twin("x", "upper") == "X" and case_twin("X", "lower") == "x"
    assert case_twin("l", "upper") == "I" and case_twin("I", "lower") == "l"  # one bar in many fonts
    assert case_twin("L", "lower") == "l" and case_twin("i", "upper") == "I"
    assert case_twin("X", "upper") is None and case_twin("7", "upper") is None and case_twin("+", "lower") is None


def test_an_unsure_letter_takes_the_case_of_the_others():
    prior = CasePrior(ALPHABET, 0.2)
    assert read(prior, logits_of("HxK4P", {1: 0.5})) == "HXK4P"
    assert read(prior, logits_of("HlJK", {1: 0.3})) == "HIJK"
    assert read(prior, logits_of("abCd", {2: 0.25}, "lower")) == "abcd"
    assert read(prior, logits_of("abId", {2: 0.9}, "lower")) == "abld"


def test_a_sure_letter_and_a_reading_of_both_cases_are_left_alone():
    prior = CasePrior(ALPHABET, 0.2)
    assert read(prior, logits_of("HxK4P", {1: 0.1})) == "HxK4P"  # the model was sure enough of the small x
    assert read(prior, logits_of("HxKy", {1: 0.9, 3: 0.9})) == "HxKy"  # two in four: a site of both cases
    assert read(prior, logits_of("Hx7", {1: 0.9})) == "Hx7"  # two letters say nothing of the case
    logits = logits_of("HXK4P")
    assert prior.apply(logits) is logits  # nothing to change: no copy
    touching = np.concatenate([logits_of("HK")[0], logits_of("xXP", {0: 0.9})[0, [0, 2, 3, 4, 5]]])[None]
    assert Codec(ALPHABET).decode_ctc(touching)[0].text == "HKxXP"  # x and X side by side, no blank between
    assert read(prior, touching) == "HKxXP"  # X there would merge the two: one character lost


def test_the_share_must_be_a_probability_share():
    for share in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="share must be above 0"):
            CasePrior(ALPHABET, share)


@pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")
def test_the_bundled_route_gives_the_generalist_the_prior(tmp_path):
    from scrapy_captcha.routing import read_route
    from scrapy_captcha.solver import Solver

    route = Solver.from_path("auto", backend="onnx")
    assert route.route.otherwise_one_case == 0.2
    assert route.expert("first").case_prior is None and route.expert("otherwise").case_prior.share == 0.2
    folder = tmp_path / "route"
    shutil.copytree(BUNDLED_WEIGHTS.parent, folder)
    data = json.loads((folder / "auto.json").read_text())
    data["otherwise_one_case"] = 2
    (folder / "auto.json").write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="otherwise_one_case must be a number from 0 to 1, got 2"):
        read_route(folder / "auto.json")


@pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")
def test_the_prior_only_changes_case_and_reads_more_of_a_capitals_site(tmp_path):
    from scrapy_captcha.solver import Solver
    from trainer.generate import GeneratorSpec, generate_dataset

    folder = tmp_path / "upper"  # our own families draw the same images from the same seed: a fixed set
    spec = GeneratorSpec(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ23456789", lengths=(4, 6), style="plain:1,styled:1")
    generate_dataset(folder, 120, spec, workers=1, seed=5, progress=False)
    files = sorted(folder.glob("*.png"))
    labels = [path.stem.split("-", 1)[1] for path in files]
    images = [path.read_bytes() for path in files]
    generalist = Solver.from_path("generalist", backend="onnx")
    with_prior = Solver(generalist.backend, one_case=0.2)
    before = [prediction.text for prediction in generalist.solve_batch(images)]
    after = [prediction.text for prediction in with_prior.solve_batch(images)]
    assert before != after  # the generalist reads some capitals as small letters (and a few readings mostly so)
    for old, new in zip(before, after):
        assert len(old) == len(new) and all(b in (a, case_twin(a, "upper"), case_twin(a, "lower")) for a, b in zip(old, new)), (old, new)
    right = (sum(t == label for t, label in zip(before, labels)), sum(t == label for t, label in zip(after, labels)))
    assert right[1] > right[0], right


def test_a_site_of_capitals_reads_the_bar_as_i():
    from scrapy_captcha.answers import answer_rules
    from scrapy_captcha.config import ModelConfig

    config = ModelConfig(arch="crnn", alphabet=ALPHABET, max_length=6)
    upper = answer_rules(config, "upper", None)
    assert "l" not in upper.codec.alphabet and "L" in upper.codec.alphabet
    assert upper.decode(logits_of("HlJK"), config)[0].text == "HIJK"  # not HLJK: the small l is one bar, as I is
    assert upper.decode(logits_of("HLJk"), config)[0].text == "HLJK"
    assert answer_rules(config, "lower", None).decode(logits_of("HlJK"), config)[0].text == "hljk"  # both cases: as read


@pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")
def test_the_benchmark_scores_the_route_at_each_share(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from trainer.generate import GeneratorSpec, generate_dataset

    folder = tmp_path / "capitals"
    generate_dataset(folder, 12, GeneratorSpec(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", lengths=(4, 5), style="styled"),
                     workers=1, seed=3, progress=False)
    out = tmp_path / "case_prior.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.case_prior", str(folder), "--shares", "0,0.2,1", "--out", str(out)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    result = results["sets"][str(folder)]
    assert results["bundled_share"] == 0.2 and result["images"] == 12 and list(result) == ["images", "0", "0.2", "1"]
    for share in ("0", "0.2", "1"):
        assert 0 <= result[share]["case_sensitive"] <= result[share]["any_case"] <= 1
