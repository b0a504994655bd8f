"""CAPTCHA_LEARN_AFTER: a site's answer length and case learned from the answers it accepted."""

from __future__ import annotations

import logging

import pytest
import pytest_twisted
from scrapy.settings import Settings

from example_project.demo_site import DemoSite, SiteOptions
from scrapy_captcha import BUNDLED_WEIGHTS, CaptchaSettingsError
from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.learning import FORGET_AFTER, KEPT, KIND_ALPHABETS, LEARN_AFTER, AnswerShape, SiteLearning, answer_shape, read_shape
from scrapy_captcha.settings import read_settings
from tests.test_middleware import assert_complete, crawl


def test_each_part_of_a_shape_needs_enough_answers():
    assert answer_shape(["AB12", "CD34"], after=3) is None
    # 3 answers decide the length; 6 letters are too few for the case (4 per answer needed: 12), 12 characters for the kind (24)
    assert read_shape(["AB12", "CD34", "EF56"], after=3) == (AnswerShape(4), frozenset({"length"}))
    assert read_shape(["AB12", "CD345", "EF56"], after=3) == (AnswerShape(), frozenset({"length"}))
    assert answer_shape(["ABCD", "EFGH", "IJKL"], after=3) == AnswerShape(4, "upper")
    assert answer_shape(["abcd", "efgh", "ijkl"], after=3) == AnswerShape(4, "lower")
    assert answer_shape(["abCD", "efgh", "iJkl"], after=3) == AnswerShape(4, None)
    # a site that ignores case accepts a small letter read for a capital now and then: one in 8 still counts as capitals
    assert answer_shape(["ABCD", "EFGH", "IJKL", "MNOp", "QRST", "UVWX"], after=3).case == "upper"
    assert answer_shape(["ABCD", "EFGH", "IJKL", "MNOp", "QRsT", "UVWx"], after=3).case == "upper"  # 3 in 24
    assert answer_shape(["ABCD", "EFGH", "IJKL", "MNop", "qrST", "UVWX"], after=3).case is None  # 4 in 24
    # 24 characters decide the kind: no digit, letters only; no letter, digits only
    assert answer_shape(["ABCD", "EFGH", "IJKL", "MNOP", "QRST", "UVWX"], after=3) == AnswerShape(4, "upper", "letters")
    assert answer_shape(["1234", "5678", "9012", "3456", "7890", "1234"], after=3) == AnswerShape(4, None, "digits")
    assert answer_shape(["ABCD", "EFGH", "IJKL", "MNOP", "QRST", "UVW1"], after=3) == AnswerShape(4, "upper", None)
    assert answer_shape(["ABCD", "EFGH", "IJKL", "MNOP", "QRST", "UV#W"], after=3).kind is None  # only letters, or only digits
    assert answer_shape(["AB12", "", "CD34"], after=3) is None  # an empty answer teaches nothing
    assert answer_shape(["AB12"] * 5, after=0) is None
    assert not AnswerShape() and AnswerShape().describe() == "nothing in common"
    assert AnswerShape(4, "upper", "letters").describe() == "4 characters, upper case, no digits"
    assert AnswerShape(kind="digits").describe() == "no letters"


def recorder():
    built: list[tuple[str, tuple[int, int] | None, str | None]] = []

    def build(case, lengths, alphabet):
        built.append((case, lengths, alphabet))
        return ("rules", case, lengths, alphabet)

    return built, build


def test_a_site_learns_each_part_once_it_shows_and_others_do_not():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=2)
    assert learning.accepted("a.test", "QXK") is None
    assert learning.accepted("a.test", "ZBM") == AnswerShape(3)  # 2 answers decide the length; 6 letters are under 8 for the case
    assert built == [("as-is", (3, 3), None)] and learning.rules("a.test") == ("rules", "as-is", (3, 3), None)
    assert learning.accepted("a.test", "HHP") == AnswerShape(case="upper")
    assert learning.accepted("a.test", "WWZ") is None
    assert learning.accepted("a.test", "ABC") is None
    assert learning.accepted("a.test", "DEF") == AnswerShape(kind="letters")  # 18 characters, no digit
    assert built[-1] == ("upper", (3, 3), KIND_ALPHABETS["letters"]) and learning.rules("b.test") == "base"
    assert learning.shape("a.test") == AnswerShape(3, "upper", "letters") and learning.accepted_answers("a.test") == 6
    assert learning.accepted("a.test", "W9Z") is None and len(built) == 3  # every part decided: nothing more to learn


def test_sites_of_one_shape_share_its_rules_and_keep_no_answers_once_decided():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=2)
    for site in ("a.test", "b.test", "c.test:8080"):
        for answer in ("QXKA", "ZBMN", "HHPW", "WWZA"):
            learning.accepted(site, answer)
    assert built == [("upper", (4, 4), None), ("upper", (4, 4), KIND_ALPHABETS["letters"])]  # built once, for the first site
    assert learning.rules("a.test") is learning.rules("c.test:8080")
    assert all(not known.answers for known in learning._sites.values())  # a broad crawl keeps a few numbers per site


def test_a_setting_the_user_gave_is_not_learned():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=2, answer_case="lower", alphabet="ABCDEFGHJK")
    learning.accepted("a.test", "QXK7")
    assert learning.accepted("a.test", "ZBMN") == AnswerShape(4, None)
    assert built == [("lower", (4, 4), "ABCDEFGHJK")]
    learning = SiteLearning(build, "base", after=2, answer_length=(4, 6))
    for answer in ("QXKA", "ZBMN", "HHPW"):
        learning.accepted("a.test", answer)
    assert learning.shape("a.test") == AnswerShape(None, "upper") and built[-1] == ("upper", (4, 6), None)
    learning = SiteLearning(build, "base", after=2, answer_case="upper", answer_length=(4, 4), alphabet="ABC")
    for answer in ("QXKA", "ZBMN", "HHPW", "WWZA"):
        assert learning.accepted("a.test", answer) is None
    assert learning.rules("a.test") == "base"


def test_what_the_answers_did_not_show_is_decided_once_and_changes_nothing():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=3)
    for answer in ("ab12", "CD345", "eF56", "gh78", "IJ901", "kL23"):
        assert learning.accepted("a.test", answer) is None
    for answer in ("MN45", "OP67", "QR89") * 4:  # alike now, but the site showed it varies
        assert learning.accepted("a.test", answer) is None
    assert learning.shape("a.test") == AnswerShape() and built == [] and learning.rules("a.test") == "base"


def test_a_site_of_digits_decides_its_case_when_the_kept_answers_run_out():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=2)
    learned = [learning.accepted("a.test", "12345") for _ in range(KEPT * 2)]
    assert learned[1] == AnswerShape(5) and learned[3] == AnswerShape(kind="digits")  # 20 characters, no letter
    assert not any(learned[4:]) and built[-1] == ("as-is", (5, 5), KIND_ALPHABETS["digits"])
    assert learning.accepted_answers("a.test") == KEPT * 2  # no letter yet: the case is decided (none) and no more are kept
    assert learning.accepted("a.test", "ABCDE") is None and learning.accepted_answers("a.test") == KEPT * 2


def test_rejections_in_a_row_forget_the_shape_and_an_accepted_answer_resets_them():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=2)
    assert learning.rejected("a.test") is None  # nothing learned yet
    learning.accepted("a.test", "QX7K")
    learning.accepted("a.test", "ZB2M")
    for _ in range(FORGET_AFTER - 1):
        assert learning.rejected("a.test") is None
    learning.accepted("a.test", "HH4P")
    for _ in range(FORGET_AFTER - 1):
        assert learning.rejected("a.test") is None
    assert learning.rejected("a.test") == AnswerShape(4, "upper")
    assert learning.rules("a.test") == "base" and learning.shape("a.test") == AnswerShape()
    learning.accepted("a.test", "QX7KL")
    assert learning.accepted("a.test", "ZB2ML") == AnswerShape(5, "upper")  # learning again, from new answers only


def test_zero_never_learns():
    learning = SiteLearning(recorder()[1], "base", after=0)
    for answer in ("QX7K",) * 20:
        assert learning.accepted("a.test", answer) is None
    assert learning.rules("a.test") == "base"


def test_a_shape_no_model_keeps_to_is_not_applied(caplog):
    def build(case, lengths, alphabet):
        raise CaptchaSettingsError("the model reads at most 8 characters")

    learning = SiteLearning(build, "base", after=2)
    learning.accepted("a.test", "ABCDEFGHIJ")
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha.learning"):
        assert learning.accepted("a.test", "KLMNOPQRST") is None
    assert "a.test accepted answers of 10 characters, upper case, no digits, which no model can keep to" in caplog.text
    assert learning.rules("a.test") == "base"


@pytest.mark.parametrize(("value", "expected"), [(None, LEARN_AFTER), ("", LEARN_AFTER), (0, 0), ("3", 3), (False, 0), (20, 20)])
def test_the_setting(value, expected):
    settings = Settings({"CAPTCHA_LEARN_AFTER": value} if value is not None else {})
    assert read_settings(settings).learn_after == expected


@pytest.mark.parametrize("value", [-1, "eight", 2.5, True])
def test_bad_values_of_the_setting_are_refused(value):
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_LEARN_AFTER must be a whole number of accepted answers"):
        read_settings(Settings({"CAPTCHA_LEARN_AFTER": value}))


class LengthChangingSite(DemoSite):
    """The demo site, whose captchas grow from 4 to 5 characters once it has accepted ``switch_after`` answers."""

    switch_after = 4

    def draw_captcha(self, session):
        if self.stats["answers_correct"] >= self.switch_after:
            self.options.length = 5
        return super().draw_captcha(session)


@pytest.fixture
def changing_site():
    site = LengthChangingSite(SiteOptions(categories=1, items_per_category=16, solve_every=1)).start()
    yield site
    site.stop()


@pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")
@pytest_twisted.ensureDeferred
async def test_a_crawl_learns_the_length_applies_it_and_forgets_it_when_the_site_changes(changing_site, caplog):
    site = changing_site
    with caplog.at_level(logging.INFO, logger="scrapy_captcha"):
        # the alphabet given, the kind is never learned: 25 characters of this alphabet hold no digit
        # about once in 110, and a site then read as letters only took attempts this test does not expect
        outcome = await crawl(site, {"CAPTCHA_LEARN_AFTER": 3, "CAPTCHA_MAX_ATTEMPTS": FORGET_AFTER + 4,
                                     "CONCURRENT_REQUESTS": 1, "CAPTCHA_ALPHABET": SEED_ALPHABET})
    assert_complete(outcome, site)
    host = site.url.split("://", 1)[1].rstrip("/")
    assert f"{host}: its 3 accepted answers show 4 characters; its captchas are read keeping to that" in caplog.text
    # the 5-character captchas read as 4 characters (the learned length, so never right) until forgotten
    assert outcome.captcha("incorrect") + outcome.captcha("low_confidence") >= FORGET_AFTER
    assert f"{host} rejected (or left unsent) {FORGET_AFTER} answers in a row: no longer reading its captchas as 4 characters" in caplog.text
    assert f"{host}: its 3 accepted answers show 5 characters" in caplog.text
    # the demo's captchas hold letters of both cases, and the alphabet is given: length is all there is to learn
    assert outcome.captcha("learned") == 2 and outcome.captcha("forgotten") == 1


@pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")
def test_the_benchmark_plays_a_crawl_learns_and_scores_with_what_it_learned(tmp_path):
    from captcha.image import ImageCaptcha

    from benchmarks.learned_rules import new_knowledge, play_crawl, score, table
    from scrapy_captcha.solver import Solver

    folder = tmp_path / "site"
    folder.mkdir()
    drawer = ImageCaptcha(160, 60)
    for index, text in enumerate(["QXK7", "ZBMW", "HHPA", "WRZM", "ABCE", "DEFH", "GHJK", "MNPQ", "RSTU", "VWXY"], 1):
        drawer.write(text, str(folder / f"{index}-{text}.png"))
    solver = Solver.from_path("auto", backend="onnx")
    knowledge = new_knowledge(solver, after=3)
    learning, trials = knowledge.learning, knowledge.trials
    base = learning.base
    crawl = play_crawl(solver, knowledge, folder)
    assert crawl["images"] == 10 and crawl["accepted"] >= 8, crawl  # the seed style: the default model reads it
    assert crawl["shape"].startswith("4 characters") and 3 <= crawl["learned_at"]["length"] <= 5, crawl
    learned = learning.rules("site.test")
    assert learned is not base and learned.rules["first"].lengths == (4, 4)
    assert crawl["model"] == "the gate" and trials.started("site.test")  # the library's style: the default model's
    figures = score(solver, learned, folder)
    assert figures["images"] == 10 and figures["any_case"] >= figures["case_sensitive"] >= 0.5
    row = {"set": "site", "crawl": crawl, "as_it_ships": score(solver, base, folder), "learned": figures}
    assert "| `site` | 4 characters" in table([row], {"site": {"case_sensitive": 0.0, "any_case": 0.5}})
