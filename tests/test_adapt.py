"""``python -m trainer adapt``: a recording folder in, better weights out; rejected answers never targets."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from example_project.demo_captchas import ALPHABET
from example_project.demo_styles import STYLES
from scrapy_captcha.recording import ACCEPTED, NOT_SUBMITTED, REJECTED, Recorder
from scrapy_captcha.solver import Solver
from scrapy_captcha.weights import BUNDLED_WEIGHTS, Weights, load_weights, save_weights
from trainer import adapt as adapt_module
from trainer.adapt import AdaptConfig, keep_pseudo_label, run
from trainer.adapt_data import collect
from trainer.surgery import grow_alphabet
from trainer.cli import main as cli
from trainer.data import DataError
from trainer.label import write_hand_label

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")


def reading_only(weights: Weights, alphabet: str) -> Weights:
    """``weights`` without the CTC head's rows for characters outside ``alphabet``: a model that cannot read them."""
    keep = [0] + [1 + i for i, c in enumerate(weights.config.alphabet) if c in alphabet]  # row 0 is the blank
    state = {**weights.state_dict, "classify.weight": weights.state_dict["classify.weight"][keep],
             "classify.bias": weights.state_dict["classify.bias"][keep]}
    config = replace(weights.config, alphabet="".join(c for c in weights.config.alphabet if c in alphabet))
    return Weights(config, state, weights.summary)


@pytest.fixture(scope="module")
def site_model(tmp_path_factory, one_thread) -> tuple[Path, str]:
    """The weights a crawl of the site ran with, and the site's demo style, whichever model is bundled.

    The weights: the bundled model reading the demo site's alphabet only, so it lacks l/o/I/O. The
    style: the one it reads worst while still passing a fifth of the captchas (adapt learns from
    the accepted ones): 'ribbon' for the seed-style model, 'night' for the generalist.
    """
    weights = reading_only(load_weights(), ALPHABET)
    path = save_weights(tmp_path_factory.mktemp("site-model") / "weights.pt", weights.build(), weights.config, weights.summary)
    solver, rng = Solver(weights), random.Random(3)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(4)) for _ in range(60)]
    read = {name: sum(p.text.lower() == text.lower() for p, text in zip(solver.solve_batch([draw(text, rng) for text in texts]), texts))
            for name, draw in STYLES.items()}
    usable = [name for name in read if read[name] >= len(texts) / 5]
    assert usable, f"the bundled model passes under a fifth of every demo style's captchas: {read}"
    return path, min(usable, key=read.get)


@pytest.fixture(scope="module")
def recording(tmp_path_factory, site_model):
    """A folder as a crawl of the site records it: the site model's readings, the site's verdicts.

    Also returns the truth of every image, and hand-labels 30 of the rejected ones (some with l/o/I/O,
    characters the site model lacks).
    """
    folder = tmp_path_factory.mktemp("recording")
    rng = random.Random(7)
    weights, style = site_model
    solver = Solver(load_weights(weights))
    texts = ["".join(rng.choice(ALPHABET) for _ in range(4)) for _ in range(150)]
    texts[:6] = ["lo2x", "IO3k", "olab", "xIlO", "4ooI", "lllk"]  # hand-labelled below
    images = [STYLES[style](text, rng) for text in texts]
    recorder = Recorder(folder)
    truth = {}
    for text, image, reading in zip(texts, images, solver.solve_batch(images)):
        if reading.confidence < 0.05:
            attempt = recorder.record(image, NOT_SUBMITTED, reading.text, reading.confidence, "http://site/", None)
        elif reading.text.lower() == text.lower():
            attempt = recorder.record(image, ACCEPTED, reading.text, reading.confidence, "http://site/", reading.text)
        else:
            attempt = recorder.record(image, REJECTED, reading.text, reading.confidence, "http://site/", reading.text)
        truth[attempt.file] = (text, attempt)
    hand = [name for name, (text, attempt) in truth.items() if attempt.verdict != ACCEPTED][:30]
    for name in hand:
        write_hand_label(folder, name, truth[name][0])
    return folder, truth, set(hand)


def test_pseudo_labels_equal_to_a_rejected_answer_are_dropped():
    wrong = frozenset({"ab3x"})
    assert keep_pseudo_label("Ab3y", 0.95, wrong, 0.9, 8)
    assert not keep_pseudo_label("Ab3X", 0.99, wrong, 0.9, 8)  # the site may ignore case
    assert not keep_pseudo_label("Ab3y", 0.5, wrong, 0.9, 8)  # unsure
    assert not keep_pseudo_label("", 0.99, wrong, 0.9, 8)
    assert not keep_pseudo_label("abcdefghij", 0.99, wrong, 0.9, 8)  # longer than the model reads


def test_collect_sorts_the_recording(recording):
    folder, truth, hand = recording
    pool = collect(folder)
    labelled = {str(path.relative_to(folder)): (label, source) for path, label, source in pool.labelled}
    unlabelled = {str(path.relative_to(folder)): wrong for path, wrong in pool.unlabelled}
    for name, (text, attempt) in truth.items():
        if name in hand:
            assert labelled[name] == (text, "hand")
        elif attempt.verdict == ACCEPTED:
            assert labelled[name] == (attempt.answer, "accepted")
        elif attempt.verdict == REJECTED:
            assert unlabelled[name] == {attempt.answer.casefold()}
        else:
            assert unlabelled[name] == frozenset()
    assert len(labelled) + len(unlabelled) == len(truth)


def test_growing_the_alphabet_keeps_the_known_rows(site_model):
    weights = load_weights(site_model[0])
    grown, new = grow_alphabet(weights, ["lo2x", "IO3k", "ab"])
    assert new == "IOlo" and grown.config.alphabet == weights.config.alphabet + "IOlo"
    rows = len(weights.config.alphabet) + 1
    assert torch.equal(grown.state_dict["classify.weight"][:rows], weights.state_dict["classify.weight"])
    assert grown.state_dict["classify.weight"].shape[0] == rows + 4
    grown.build()  # a model of the grown shape loads these weights
    assert grow_alphabet(weights, ["ab3x"]) == (weights, "")


def test_adapt_raises_held_out_accuracy_and_never_targets_a_rejected_answer(recording, site_model, tmp_path, monkeypatch, capsys):
    folder, truth, hand = recording
    rejected = {attempt.answer.casefold() for _, attempt in truth.values() if attempt.verdict == REJECTED}
    targets: list[str] = []

    class Watching(adapt_module.Collate):
        def __call__(self, items):
            targets.extend(label for _, label in items)
            return super().__call__(items)

    monkeypatch.setattr(adapt_module, "Collate", Watching)
    monkeypatch.setattr("trainer.precision.cpu_has_bf16", lambda: True)  # a CPU that --precision bf16 would speed up
    config = AdaptConfig(folder=str(folder), out=str(tmp_path / "run"), weights=str(site_model[0]), steps=40, batch_size=16,
                         unlabelled_ratio=2, threshold=0.0, holdout=0.3, eval_every=20, lr=1e-3, progress=False)  # threshold 0: every reading is a candidate
    final = run(config)
    assert final["dropped_known_wrong"] > 0, "no teacher reading equalled a rejected answer: the filter went untested"
    labelled = {label.casefold() for _, label, _ in collect(folder).labelled}  # these may be targets, of their own images
    assert targets and not ({t.casefold() for t in targets} & rejected) - labelled
    assert final["after"]["sequence_accuracy"] > final["before"]["sequence_accuracy"]
    assert final["new_characters"] == "IOlo"
    out = tmp_path / "run"
    for name in ("weights.pt", "checkpoint.pt", "metrics.json", "curves.png", "predictions.png"):
        assert (out / name).is_file(), name
    adapted = Solver.from_path(out / "weights.pt")  # what CAPTCHA_WEIGHTS loads
    assert set("IOlo") <= set(adapted.config.alphabet)
    assert json.loads((out / "metrics.json").read_text())["final"]["held_out"] == final["held_out"]
    printed = capsys.readouterr().out
    assert "held-out accuracy before" in printed and "held-out accuracy after" in printed
    assert "this CPU has bfloat16 instructions: --precision bf16 ran" in printed  # float32 by default, the hint says why not

    # resumable: carries on from the checkpoint's step
    resumed = run(AdaptConfig(**{**config.__dict__, "steps": 45, "resume": True}))
    assert "resumed at step 40" in capsys.readouterr().out and resumed["after"]


def test_unusable_folders_get_clear_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="holds no captcha images"):
        collect(tmp_path)
    assert cli(["adapt", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "3-ab12.png").write_bytes(b"<html>not an image</html>")
    assert cli(["adapt", str(tmp_path / "broken"), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "3-ab12.png" in capsys.readouterr().err
    assert cli(["adapt", str(tmp_path / "broken"), "--out", str(tmp_path / "run2"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_the_demo_site_draws_the_unseen_styles(demo_site):
    import io
    import urllib.request

    from PIL import Image

    from example_project.demo_site import SiteOptions

    with pytest.raises(ValueError, match="style"):
        SiteOptions(style="fancy")
    for style in ("ribbon", "night"):
        site = demo_site(style=style)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        png = opener.open(site.url + "/captcha/image").read()
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.size == (160, 60)
        assert site.stats["images"] == 1


def test_augmenting_a_dark_image_fills_with_its_own_background():
    from torchvision.transforms import v2

    from trainer.adapt import OnOwnBackground

    shift = v2.RandomAffine(degrees=0, translate=(0.3, 0.3), fill=1.0)  # fills what it uncovers with white
    dark = torch.full((1, 60, 160), 0.1)
    dark[:, 25:35, 60:100] = 0.9  # a light stroke on a dark background, like the demo's 'night' style
    torch.manual_seed(0)
    assert max(shift(dark).max().item() for _ in range(5)) == 1.0  # the white fill the wrapper is there for
    torch.manual_seed(0)
    shifted = [OnOwnBackground(shift)(dark) for _ in range(5)]
    assert all(image.max().item() <= 0.9 + 1e-6 and (image - 0.1).abs().lt(1e-6).float().mean() > 0.5 for image in shifted)
    light = 1.0 - dark  # dark text on white: augmented as it is
    torch.manual_seed(0)
    expected = shift(light)
    torch.manual_seed(0)
    assert torch.equal(OnOwnBackground(shift)(light), expected)


def test_supervised_share_reads_no_unlabelled_image_before_its_end(recording, tmp_path):
    folder, _, _ = recording
    final = run(AdaptConfig(folder=str(folder), out=str(tmp_path / "run"), steps=4, batch_size=8, threshold=0.0,
                            supervised_share=1.0, eval_every=4, progress=False))
    assert final["pseudo_labels"] == final["dropped_low_confidence"] == final["dropped_known_wrong"] == 0
    final = run(AdaptConfig(folder=str(folder), out=str(tmp_path / "run2"), steps=4, batch_size=8, threshold=0.0,
                            supervised_share=0.5, eval_every=4, progress=False))
    read = final["pseudo_labels"] + final["dropped_low_confidence"] + final["dropped_known_wrong"]
    assert read == 2 * 16  # steps 3 and 4, 16 unlabelled images each


def test_a_grown_character_starts_from_its_look_alike():
    from scrapy_captcha.model import ModelConfig, build_model
    from scrapy_captcha.weights import Weights

    config = ModelConfig(arch="crnn", alphabet="0123456789abcdefghijk", max_length=6)
    weights = Weights(config, build_model(config).state_dict())
    grown, new = grow_alphabet(weights, ["O1ab", "zz"])  # O looks like 0; z has no look-alike here
    assert new == "Oz" and grown.config.alphabet == config.alphabet + "Oz"
    weight, bias = grown.state_dict["classify.weight"], grown.state_dict["classify.bias"]
    zero, o_row, z_row = 1 + config.alphabet.index("0"), 1 + len(config.alphabet), 2 + len(config.alphabet)  # row 0: blank
    assert torch.allclose(weight[o_row], weight[zero], atol=0.05) and bias[o_row] < bias[zero]
    assert torch.allclose(weight[z_row], weight[1:zero + len(config.alphabet)].mean(0), atol=0.05)
    grown.build()


def test_later_weights_one_held_out_image_behind_the_best_replace_it():
    from trainer.adapt import no_worse

    assert no_worse(20 / 22, 21 / 22, 22)  # one image behind: noise, keep the longer-trained weights
    assert not no_worse(19 / 22, 21 / 22, 22)  # two behind: worse
    assert no_worse(0.96, 0.95, 200) and not no_worse(0.94, 0.95, 200)  # a bigger held-out part is trusted more


def test_the_recipe_follows_the_folder_unless_set():
    from pathlib import Path

    from trainer.adapt_data import Pool
    from trainer.adapt_recipe import HAND_RECIPE, READS_THE_SITE, RECORDING_RECIPE, recipe

    accepted_only = Pool([(Path("1-ab3x.png"), "ab3x", "accepted")], [])
    with_hand = Pool([(Path("1-ab3x.png"), "ab3x", "accepted"), (Path("rejected/2.png"), "Kp4q", "hand")], [])
    config = AdaptConfig(folder="f", out="o")
    assert {k: getattr(recipe(config, accepted_only), k) for k in RECORDING_RECIPE} == RECORDING_RECIPE
    assert {k: getattr(recipe(config, with_hand), k) for k in HAND_RECIPE} == HAND_RECIPE
    # hand labels for a start that reads the site already: the gentle recipe; for one that reads little: the hand recipe
    reads = recipe(config, with_hand, start_accuracy=READS_THE_SITE + 0.25)
    assert {k: getattr(reads, k) for k in RECORDING_RECIPE} == RECORDING_RECIPE
    assert {k: getattr(recipe(config, with_hand, start_accuracy=0.05), k) for k in HAND_RECIPE} == HAND_RECIPE
    assert HAND_RECIPE != RECORDING_RECIPE
    assert recipe(AdaptConfig(folder="f", out="o", lr=5e-4), with_hand).lr == 5e-4  # what the user set stays
    with pytest.raises(ValueError, match="labelled_augmentation"):
        recipe(AdaptConfig(folder="f", out="o", labelled_augmentation="huge"), with_hand)


def test_adapt_reads_a_recording_of_mixed_sizes_with_a_height_mode_model(tmp_path):
    from captcha.image import ImageCaptcha

    from scrapy_captcha.model import ModelConfig, build_model

    config = ModelConfig(alphabet="abcdefgh", resize="height", height=32, hidden=16, max_length=6)
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "height.pt", build_model(config), config)
    recorder, rng = Recorder(tmp_path / "recording"), random.Random(0)
    for index in range(12):  # 160x60 and 200x60: 88 and 112 columns wide at height 32
        text = "".join(rng.choice("abcdefgh") for _ in range(4))
        recorder.record(ImageCaptcha(width=(160, 200)[index % 2], height=60).generate(text).getvalue(), ACCEPTED, text, 0.9,
                        "http://site/", text)
    final = run(AdaptConfig(folder=str(tmp_path / "recording"), out=str(tmp_path / "run"), weights=str(weights), steps=2,
                            batch_size=4, holdout=0.3, eval_every=2, progress=False))
    assert final["held_out"] == 4 and "sequence_accuracy" in final["after"]


def test_adapt_keeps_to_the_length_case_and_kind_all_labels_share_unless_told(capsys):
    from trainer.adapt_data import Pool
    from trainer.adapt_recipe import check, learned_rules

    def pool(texts):
        return Pool([(Path(f"{i}-{text}.png"), text, "accepted") for i, text in enumerate(texts)], [])

    model = "0123456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # the default model's: no l, o, I, O
    capitals = pool(["ABCX", "KPMQ", "ZZYM"] * 6)  # as CAPTCHA_LEARN_AFTER: 8 answers, 32 letters, 64 characters
    learned = learned_rules(AdaptConfig(folder="f", out="o"), capitals, model)
    assert (learned.answer_length, learned.answer_case) == ((4, 4), "upper")
    assert learned.alphabet == "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # the model's letters: none to grow
    assert ("the 18 labels show 4 characters, upper case, no digits: the teacher's readings keep to their length, their case, "
            "letters only") in capsys.readouterr().out
    told = AdaptConfig(folder="f", out="o", answer_length=(4, 6), answer_case="lower", alphabet="ABC")
    assert learned_rules(told, capitals, model) == told and not capsys.readouterr().out
    assert learned_rules(AdaptConfig(folder="f", out="o", answer_case="lower"), capitals, model).answer_length == (4, 4)
    never = AdaptConfig(folder="f", out="o", learn_after=0)
    assert learned_rules(never, capitals, model) == never
    few = AdaptConfig(folder="f", out="o")
    assert learned_rules(few, pool(["AB3X", "KP4Q", "ZZ9M"]), model) == few
    varied = learned_rules(AdaptConfig(folder="f", out="o"), pool(["AB3X", "KP4Q", "ZZ9Mw"] * 3), model)
    assert (varied.answer_length, varied.answer_case, varied.alphabet) == (None, "as-is", None)
    with pytest.raises(ValueError, match="learn_after must be 0"):
        check(AdaptConfig(folder="f", out="o", learn_after=-1))
