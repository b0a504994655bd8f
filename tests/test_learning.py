"""CAPTCHA_LEARN_AFTER: a site's answer length and case learned from the answers it accepted."""

from __future__ import annotations

import logging

import pytest
import pytest_twisted
from scrapy.settings import Settings

from example_project.demo_site import DemoSite, SiteOptions
from scrapy_captcha import BUNDLED_WEIGHTS, CaptchaSettingsError
from scrapy_captcha.learning import FORGET_AFTER, LEARN_AFTER, AnswerShape, SiteLearning, answer_shape
from scrapy_captcha.settings import read_settings
from tests.test_middleware import assert_complete, crawl


def test_a_shape_needs_enough_answers_all_alike():
    assert answer_shape(["AB12", "CD34"], after=3) is None
    assert answer_shape(["AB12", "CD34", "EF56"], after=3) == AnswerShape(4, "upper")
    assert answer_shape(["ab12", "cd34", "ef56"], after=3) == AnswerShape(4, "lower")
    assert answer_shape(["AB12", "cD34", "EF56"], after=3) == AnswerShape(4, None)
    assert answer_shape(["AB12", "CD345", "EF56"], after=3) == AnswerShape(None, "upper")
    # digits have no case: a case needs as many letters as answers
    assert answer_shape(["1234", "56AB", "901C"], after=3) == AnswerShape(4, "upper")
    assert answer_shape(["1234", "5678", "901A"], after=3) == AnswerShape(4, None)
    assert answer_shape(["1234", "5678", "9012"], after=3) == AnswerShape(4, None)
    assert answer_shape(["1234", "5678", "90AB"], after=4) is None
    assert answer_shape(["AB12", "", "CD34"], after=3) is None  # an empty answer teaches nothing
    assert answer_shape(["AB12"] * 5, after=0) is None
    assert not AnswerShape() and AnswerShape(None, None).describe() == "nothing in common"
    assert AnswerShape(4, "upper").describe() == "4 characters, upper case"


def recorder():
    built: list[tuple[str, tuple[int, int] | None]] = []

    def build(case, lengths):
        built.append((case, lengths))
        return ("rules", case, lengths)

    return built, build


def test_a_site_learns_after_enough_answers_and_others_do_not():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=3)
    for answer in ("QX7K", "ZB2M"):
        assert learning.accepted("a.test", answer) is None
    assert learning.accepted("a.test", "HH4P") == AnswerShape(4, "upper")
    assert built == [("upper", (4, 4))]
    assert learning.rules("a.test") == ("rules", "upper", (4, 4)) and learning.rules("b.test") == "base"
    assert learning.accepted("a.test", "WW9Z") is None and len(built) == 1  # learned once


def test_a_setting_the_user_gave_is_not_learned():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=2, answer_case="lower")
    learning.accepted("a.test", "QX7K")
    assert learning.accepted("a.test", "ZB2M") == AnswerShape(4, None)
    assert built == [("lower", (4, 4))]
    learning = SiteLearning(build, "base", after=2, answer_length=(4, 6))
    learning.accepted("a.test", "QX7K")
    assert learning.accepted("a.test", "ZB2M") == AnswerShape(None, "upper")
    assert built[-1] == ("upper", (4, 6))
    learning = SiteLearning(build, "base", after=2, answer_case="upper", answer_length=(4, 4))
    learning.accepted("a.test", "QX7K")
    assert learning.accepted("a.test", "ZB2M") is None and learning.rules("a.test") == "base"


def test_answers_with_nothing_in_common_decide_once_and_change_nothing():
    built, build = recorder()
    learning = SiteLearning(build, "base", after=3)
    for answer in ("ab12", "CD345", "eF56"):
        assert learning.accepted("a.test", answer) is None
    for answer in ("GH78", "IJ90", "KL12"):  # alike now, but the site showed it varies
        assert learning.accepted("a.test", answer) is None
    assert learning.shape("a.test") == AnswerShape() and built == [] and learning.rules("a.test") == "base"


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
    assert learning.rules("a.test") == "base" and learning.shape("a.test") is None
    learning.accepted("a.test", "QX7KL")
    assert learning.accepted("a.test", "ZB2ML") == AnswerShape(5, "upper")  # learning again, from new answers only


def test_zero_never_learns():
    learning = SiteLearning(recorder()[1], "base", after=0)
    for answer in ("QX7K",) * 20:
        assert learning.accepted("a.test", answer) is None
    assert learning.rules("a.test") == "base"


def test_a_shape_no_model_keeps_to_is_not_applied(caplog):
    def build(case, lengths):
        raise CaptchaSettingsError("the model reads at most 8 characters")

    learning = SiteLearning(build, "base", after=2)
    learning.accepted("a.test", "ABCDEFGHIJ")
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha.learning"):
        assert learning.accepted("a.test", "KLMNOPQRST") is None
    assert "a.test accepted answers of 10 characters, upper case, which no model can keep to" in caplog.text
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
    with caplog.at_level(logging.INFO, logger="scrapy_captcha.middleware"):
        outcome = await crawl(site, {"CAPTCHA_LEARN_AFTER": 3, "CAPTCHA_MAX_ATTEMPTS": FORGET_AFTER + 4,
                                     "CONCURRENT_REQUESTS": 1})
    assert_complete(outcome, site)
    host = site.url.split("://", 1)[1].rstrip("/")
    assert f"{host} accepted 3 answers of 4 characters: its captchas are read keeping to that" in caplog.text
    # the 5-character captchas read as 4 characters (the learned length, so never right) until forgotten
    assert outcome.captcha("incorrect") + outcome.captcha("low_confidence") >= FORGET_AFTER
    assert f"{host} rejected (or left unsent) {FORGET_AFTER} answers in a row: no longer reading its captchas as 4 characters" in caplog.text
    assert f"{host} accepted 3 answers of 5 characters" in caplog.text
    assert outcome.captcha("learned") == 2 and outcome.captcha("forgotten") == 1
