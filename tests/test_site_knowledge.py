"""What sites taught, kept between crawls (CAPTCHA_LEARN_FILE), and the route's models named when one cannot keep to it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import pytest_twisted
from scrapy.settings import Settings

from scrapy_captcha import BUNDLED_WEIGHTS
from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.errors import CaptchaSettingsError
from scrapy_captcha.learning import FORGET_AFTER, AnswerShape, SiteLearning
from scrapy_captcha.model_trial import FIRST, OTHERWISE, TRIAL_CAPTCHAS, ModelTrials
from scrapy_captcha.settings import read_settings
from scrapy_captcha.site_knowledge import LEARN_FILE_FORMAT, LEARN_FILE_NAME, SiteKnowledge, models_id, rules_builder
from tests.test_middleware import assert_complete, crawl

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")


@pytest.fixture(scope="module")
def route():
    from scrapy_captcha.solver import Solver

    return Solver.from_path("auto", backend="onnx")


def knowledge(route, learn_file: Path | None = None, after: int = 2, answer_case: str = "as-is", stats: dict | None = None,
              trials: bool = True) -> SiteKnowledge:
    """The middleware's SiteKnowledge of the bundled route, its learn file read."""
    counted = stats if stats is not None else {}

    def inc(key: str, count: int = 1) -> None:
        counted[key] = counted.get(key, 0) + count

    learning = SiteLearning(rules_builder(route), route.answer_rules(answer_case, None, None), after, answer_case)
    known = SiteKnowledge(route, learning, ModelTrials(route.route.first.name) if trials else None, inc, learn_file=learn_file)
    known.load()
    return known


def teach(known: SiteKnowledge, site: str, answers: list[str]) -> None:
    for answer in answers:
        known.verdict(site, None, accepted=True, text=answer)


def test_a_length_only_the_generalist_reads_is_said_so_not_blamed_on_the_settings(route, caplog):
    known = knowledge(route)
    with caplog.at_level(logging.INFO, logger="scrapy_captcha"):
        teach(known, "long.test", ["Ab3xQz7KmN4p", "Rt8wHd2eKq9s"])  # 12 characters: the default model reads at most 8
    assert known.learning.shape("long.test") == AnswerShape(12)
    assert known.learning.rules("long.test").unable == {"first"}
    assert ("long.test: its 2 accepted answers show 12 characters; its captchas are read keeping to that from now on, "
            f"all by {route.route.otherwise.name}, the only model of the route that can") in caplog.text
    assert "CAPTCHA_ANSWER_LENGTH" not in caplog.text
    assert "WARNING" not in caplog.text


def test_the_learn_file_keeps_shapes_answers_so_far_and_trials_for_the_next_crawl(route, tmp_path):
    path = tmp_path / "learned.json"
    first = knowledge(route, path, after=4)
    teach(first, "shaped.test", ["QX7K", "ZB2M", "HH4P", "TT8Q"])  # 4 answers of one length: the length applies
    teach(first, "halfway.test", ["AB12", "CD34", "EF56"])  # one short of deciding
    arms = [first.trials.arm("tried.test", route.route.first.name) for _ in range(2 * TRIAL_CAPTCHAS)]
    for arm in arms:  # the generalist's answers all accepted, the default model's none: it takes the site
        first.verdict("tried.test", arm, accepted=arm == OTHERWISE)
    assert path.is_file()  # written as the first part was decided
    first.save()  # as the spider closes: the answers so far too
    saved = json.loads(path.read_text())
    assert saved["format"] == LEARN_FILE_FORMAT and saved["models"] == models_id(route)
    assert saved["sites"]["halfway.test"]["answers"] == ["AB12", "CD34", "EF56"]

    stats: dict = {}
    second = knowledge(route, path, after=4, stats=stats)
    assert second.learning.shape("shaped.test") == AnswerShape(4)
    assert second.learning.rules("shaped.test").rules["first"].lengths == (4, 4)
    assert second.trials.goes_to_otherwise("tried.test")
    assert stats == {"remembered": 2}
    teach(second, "halfway.test", ["GH78"])  # the fourth answer, one crawl later, decides it
    assert second.learning.shape("halfway.test") == AnswerShape(4)
    assert stats["learned"] == 1


def test_what_the_settings_now_fix_is_not_taken_from_the_file(route, tmp_path):
    path = tmp_path / "learned.json"
    first = knowledge(route, path, after=2)
    teach(first, "caps.test", ["QXZKBM", "HHPTRQ", "WXYZAB", "CDEFGH"])  # 24 letters, all capitals: length and case
    assert first.learning.shape("caps.test") == AnswerShape(6, "upper", "letters")
    first.save()  # the spider closes
    later = knowledge(route, path, after=2, answer_case="lower")  # the user now sets CAPTCHA_ANSWER_CASE
    assert later.learning.shape("caps.test") == AnswerShape(6, None, "letters")


def test_trials_of_other_models_start_again_and_shapes_stay(route, tmp_path, caplog):
    path = tmp_path / "learned.json"
    first = knowledge(route, path, after=2)
    teach(first, "a.test", ["QX7K", "ZB2M"])
    first.trials.arm("a.test", route.route.first.name)
    first.save()
    data = json.loads(path.read_text())
    data["models"] = "0" * 64  # written by a crawl with other models
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.INFO, logger="scrapy_captcha"):
        later = knowledge(route, path, after=2)
    assert later.learning.shape("a.test") == AnswerShape(4) and not later.trials.started("a.test")
    assert "its trials were of other models: they start again" in caplog.text


@pytest.mark.parametrize(("content", "fault"), [
    ("{not json", "cannot be read as JSON"),
    ('{"format": "something-else", "version": 1}', "is not a scrapy-captcha learn file"),
    (f'{{"format": "{LEARN_FILE_FORMAT}", "version": 99, "sites": {{}}}}', "has format version 99"),
    (f'{{"format": "{LEARN_FILE_FORMAT}", "version": 1, "sites": []}}', 'holds no "sites" and "trials" objects'),
    (f'{{"format": "{LEARN_FILE_FORMAT}", "version": 1, "sites": {{"a.test": {{"shape": {{"length": -4}}}}}}}}',
     "is damaged: site 'a.test': length must be a whole number above 0"),
    (f'{{"format": "{LEARN_FILE_FORMAT}", "version": 1, "sites": {{"a.test": {{"shape": {{"case": "title"}}}}}}}}',
     "is damaged: site 'a.test': case must be 'upper' or 'lower'"),
])
def test_a_file_not_ours_or_damaged_stops_the_start_and_is_left_as_it_is(route, tmp_path, content, fault):
    path = tmp_path / "learned.json"
    path.write_text(content)
    with pytest.raises(CaptchaSettingsError, match=f"CAPTCHA_LEARN_FILE '{path}' {fault}"):
        knowledge(route, path)
    assert path.read_text() == content


def test_a_trial_damaged_in_the_file_is_named(route, tmp_path):
    path = tmp_path / "learned.json"
    path.write_text(json.dumps({"format": LEARN_FILE_FORMAT, "version": 1, "models": models_id(route), "sites": {},
                                "trials": {"b.test": {"turn": 3, "met": {FIRST: 1}, "accepted": {}, "outcome": None}}}))
    with pytest.raises(CaptchaSettingsError, match="site 'b.test': trial: met must count 'first' and 'otherwise'"):
        knowledge(route, path)


def test_a_file_that_cannot_be_written_costs_nothing_but_a_logged_error(route, tmp_path, caplog):
    path = tmp_path / "gone" / "learned.json"
    path.parent.mkdir()
    known = knowledge(route, path, after=2)
    path.parent.rmdir()  # the folder went away mid-crawl
    with caplog.at_level(logging.ERROR, logger="scrapy_captcha"):
        teach(known, "a.test", ["QX7K", "ZB2M"])
    assert known.learning.shape("a.test") == AnswerShape(4)  # learned all the same, kept in memory
    assert f"CAPTCHA_LEARN_FILE {path} could not be written" in caplog.text
    assert not path.parent.exists()


def test_a_broad_crawl_writes_the_file_at_most_every_so_often_and_whole_at_the_close(route, tmp_path):
    path = tmp_path / "learned.json"
    known = knowledge(route, path, after=2)
    for index in range(50):  # 50 sites decided within a few milliseconds: one write, at the first
        teach(known, f"site{index}.test", ["QX7K", "ZB2M"])
    assert list(json.loads(path.read_text())["sites"]) == ["site0.test"]
    known.save()  # the spider closes
    assert len(json.loads(path.read_text())["sites"]) == 50
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [".learned.json.lock", "learned.json"]  # no temporary file


def test_crawls_sharing_the_file_at_once_keep_each_others_sites(route, tmp_path):
    path = tmp_path / "learned.json"
    teach(knowledge(route, path, after=2), "old.test", ["QX7K", "ZB2M"])  # an earlier crawl
    shop, news = knowledge(route, path, after=2), knowledge(route, path, after=2)  # two spiders start together
    teach(shop, "shop.test", ["ABCDE", "FGHJK"])
    teach(news, "news.test", ["123456", "789012"])
    teach(shop, "old.test", ["QX7K"] * 8)  # only the shop crawl meets old.test again
    shop.save()
    news.save()  # news.test's crawl closes last, with old.test as it was when it started
    later = knowledge(route, path, after=2)
    assert later.learning.shape("shop.test") == AnswerShape(5, "upper") and later.learning.shape("news.test") == AnswerShape(6)
    assert later.learning.shape("old.test") == AnswerShape(4, "upper")  # the shop crawl's newer case, not news' stale copy


def test_what_a_later_crawl_forgets_leaves_the_file_too(route, tmp_path):
    path = tmp_path / "learned.json"
    first = knowledge(route, path, after=2)
    teach(first, "t.test", ["QX7K", "ZB2M"])
    for arm in [first.trials.arm("t.test", route.route.first.name) for _ in range(2 * TRIAL_CAPTCHAS)]:
        first.verdict("t.test", arm, accepted=arm == OTHERWISE, text="QX7K" if arm == OTHERWISE else None)
    first.save()
    second = knowledge(route, path, after=2)
    assert second.trials.goes_to_otherwise("t.test") and second.learning.shape("t.test") == AnswerShape(4, "upper")
    for _ in range(FORGET_AFTER):  # the site changed its captchas
        second.verdict("t.test", None, accepted=False)
    second.save()
    third = knowledge(route, path, after=2)
    assert not third.trials.started("t.test") and third.learning.shape("t.test") == AnswerShape()


def test_a_file_replaced_by_something_else_mid_crawl_is_not_overwritten(route, tmp_path, caplog):
    path = tmp_path / "learned.json"
    known = knowledge(route, path, after=2)
    path.write_text("notes of mine")
    with caplog.at_level(logging.ERROR, logger="scrapy_captcha"):
        teach(known, "a.test", ["QX7K", "ZB2M"])
    assert path.read_text() == "notes of mine"
    assert f"CAPTCHA_LEARN_FILE {path} cannot be read as JSON" in caplog.text and "it is left as it is" in caplog.text


def test_the_setting(tmp_path):
    def learn_file(**settings):
        return read_settings(Settings(settings)).learn_file

    assert learn_file() is None
    assert learn_file(JOBDIR=str(tmp_path / "job")) == tmp_path / "job" / LEARN_FILE_NAME
    assert (tmp_path / "job").is_dir()
    assert learn_file(CAPTCHA_LEARN_FILE=str(tmp_path / "new" / "sites.json")) == tmp_path / "new" / "sites.json"
    assert learn_file(CAPTCHA_LEARN_FILE="", JOBDIR=str(tmp_path)) is None
    assert learn_file(CAPTCHA_LEARN_FILE=False, JOBDIR=str(tmp_path)) is None
    assert learn_file(CAPTCHA_LEARN_AFTER=0, JOBDIR=str(tmp_path)) is None  # nothing is learned: no file
    with pytest.raises(CaptchaSettingsError, match="is a directory; name a file in it"):
        learn_file(CAPTCHA_LEARN_FILE=str(tmp_path))
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_LEARN_FILE must be a file path, got 3"):
        learn_file(CAPTCHA_LEARN_FILE=3)
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_LEARN_FILE .*: its folder cannot be created"):
        learn_file(CAPTCHA_LEARN_FILE=str(tmp_path / "plain-file" / "sites.json"))


@pytest_twisted.ensureDeferred
async def test_a_second_crawl_reads_the_site_as_the_first_one_taught(demo_site, tmp_path, caplog):
    site = demo_site(categories=1, items_per_category=6, solve_every=1)
    path = tmp_path / "learned.json"
    # the alphabet given, the kind is never learned (24 characters of the demo's hold no digit about once in 90)
    settings = {"CAPTCHA_LEARN_AFTER": 3, "CAPTCHA_LEARN_FILE": str(path), "CONCURRENT_REQUESTS": 1,
                "CAPTCHA_ALPHABET": SEED_ALPHABET}
    first = await crawl(site, settings)
    assert_complete(first, site)
    assert first.captcha("learned") == 1 and not first.captcha("remembered")
    host = site.url.split("://", 1)[1].rstrip("/")
    assert json.loads(path.read_text())["sites"][host]["shape"] == {"length": 4}

    site.served_pages.clear()
    site.stats.clear()
    with caplog.at_level(logging.INFO, logger="scrapy_captcha"):
        second = await crawl(site, settings)
    assert_complete(second, site)
    assert second.captcha("remembered") == 1 and not second.captcha("learned")  # read with the length from its first captcha
    assert f"CAPTCHA_LEARN_FILE {path}: 1 sites known from earlier crawls, 1 read with the shape they taught" in caplog.text


def test_the_benchmark_plays_crawls_one_after_another_afresh_and_with_the_file(route, tmp_path):
    from captcha.image import ImageCaptcha

    from benchmarks.learned_rules import crawl_after_crawl

    drawer = ImageCaptcha(160, 60)
    texts = ["Ab3x", "Qz7K", "mN4p", "Rt8w", "Hd2e", "Kq9s", "Wc5v", "Pe6j", "Tu2y", "Fg7h", "Jk8m", "Vn3b"]
    for index, text in enumerate(texts, 1):
        drawer.write(text, str(tmp_path / f"{index}-{text}.png"))
    paths = sorted(tmp_path.glob("*.png"), key=lambda path: int(path.stem.split("-", 1)[0]))
    result = crawl_after_crawl(route, paths, crawls=2, after=3)
    assert result["crawls"] == 2 and result["captchas_per_crawl"] == 6
    afresh, kept = result["afresh"], result["with_learn_file"]
    assert afresh[0] == kept[0]  # the first crawl has no file to start from
    assert afresh[0]["shape"] == "4 characters"  # the library's captchas: 3 of 6 accepted show 4 characters
    assert "length" in afresh[1]["learned_at"] and "length" not in kept[1]["learned_at"]  # learned again, or known already
    assert kept[1]["shape"] == "4 characters"
