"""The captcha middleware in real crawls of the demo site (loopback HTTP), with the bundled model."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted
import scrapy
from PIL import Image
from scrapy.crawler import CrawlerRunner
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from scrapy_captcha import (
    BUNDLED_WEIGHTS,
    Addon,
    CaptchaImageError,
    CaptchaMiddleware,
    CaptchaSettingsError,
    CaptchaUnsolved,
    WeightsError,
)
from scrapy_captcha.middleware import PRIORITY
from tests.hostile_site import Outcome as CrawlOutcome

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")

BASE_SETTINGS = {
    "DOWNLOADER_MIDDLEWARES": {"scrapy_captcha.CaptchaMiddleware": PRIORITY},
    "ROBOTSTXT_OBEY": False,
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,
    "LOG_LEVEL": "INFO",
    "CAPTCHA_ANSWER_CASE": "lower",  # the demo site ignores case: folding 'a'/'A' helps the model
    "CAPTCHA_MAX_ATTEMPTS": 8,  # a full crawl must not depend on luck
}
SMALL = {"categories": 1, "items_per_category": 8}  # home, one listing page, 8 products


@dataclass
class Outcome(CrawlOutcome):
    """What a crawl produced, with the requests made and the items scraped."""

    requested: int = 0
    items: list[dict] = field(default_factory=list)


class CatalogueSpider(scrapy.Spider):
    """Home -> categories -> listing pages -> products, recording every response and failure."""

    name = "catalogue"

    def __init__(self, outcome: Outcome, base_url: str, start_paths: tuple[str, ...] = ("/",), jars: int = 0,
                 meta: dict | None = None, follow: bool = True, then: tuple[str, ...] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.outcome, self.base_url, self.start_paths = outcome, base_url, start_paths
        self.jars, self.meta, self.follow = jars, meta or {}, follow
        self.then = then  # paths requested all at once after the first response

    async def start(self):
        for index, path in enumerate(self.start_paths):
            meta = dict(self.meta, cookiejar=index % self.jars) if self.jars else dict(self.meta)
            yield self.request(self.base_url + path, meta)

    def request(self, url: str, meta: dict) -> scrapy.Request:
        self.outcome.requested += 1
        # Each cookiejar crawls the whole catalogue: the duplicate filter does not know about jars.
        return scrapy.Request(url, meta=meta, callback=self.parse, errback=self.failed, dont_filter=bool(self.jars) or not self.follow)

    def parse(self, response):
        self.outcome.pages.append(response)
        for path in self.then:
            yield self.request(self.base_url + path, {})
        self.then = ()
        if response.css("article.product"):
            self.outcome.items.append({
                "name": response.css("h1.name::text").get(),
                "price": response.css("span.price::text").get(),
                "sku": response.css("dd.sku::text").get(),
                "description": response.css("div.description p::text").get(),
                "jar": response.meta.get("cookiejar", -1),
            })
        if self.follow:
            jar = {"cookiejar": response.meta["cookiejar"]} if "cookiejar" in response.meta else {}
            for href in response.css("a.category::attr(href), a.product::attr(href), a[rel=next]::attr(href)").getall():
                yield self.request(response.urljoin(href), jar)

    def failed(self, failure):
        self.outcome.failures.append(failure)


async def crawl(site, settings: dict | None = None, **spider_args: Any) -> Outcome:
    outcome = Outcome()
    runner = CrawlerRunner({**BASE_SETTINGS, **(settings or {})})
    crawler = runner.create_crawler(CatalogueSpider)
    await runner.crawl(crawler, outcome=outcome, base_url=site.url, **spider_args)
    outcome.stats = crawler.stats.get_stats()
    return outcome


def assert_consistent(outcome: Outcome, site) -> None:
    """No request lost, captcha stats add up and match what the site saw."""
    assert outcome.requested == len(outcome.pages) + len(outcome.failures)
    assert outcome.captcha("solved") + outcome.captcha("gave_up") == outcome.captcha("detected")
    assert outcome.captcha("attempts") == site.stats["answers"] + site.stats["csrf_rejected"]
    assert outcome.captcha("form_refused") == site.stats["csrf_rejected"]
    assert outcome.captcha("incorrect") == site.stats["answers_wrong"]
    assert outcome.captcha("solved") == site.stats["answers_correct"]
    assert outcome.captcha("solved_first_attempt") <= outcome.captcha("solved")


def assert_complete(outcome: Outcome, site) -> None:
    """Every catalogue page reached, every item complete, nothing failed."""
    assert not outcome.failures, [str(error) for error in outcome.errors()]
    assert site.served_pages == site.expected_pages()
    assert len(outcome.items) == site.expected_items()
    assert all(all(item.values()) for item in outcome.items)
    assert len({item["sku"] for item in outcome.items}) == site.expected_items()
    assert not any(page.css("#captcha-image") for page in outcome.pages)
    assert_consistent(outcome, site)


@pytest_twisted.ensureDeferred
async def test_full_crawl_solves_once_per_session(demo_site, caplog):
    site = demo_site()
    with caplog.at_level(logging.INFO, logger="scrapy_captcha"):
        outcome = await crawl(site)
    assert_complete(outcome, site)
    assert outcome.captcha("detected") == outcome.captcha("solved") == 1
    assert outcome.captcha("solve_time") > 0
    # "auto": each reading counted by the model that made it (the default one for ~97% of the library's images)
    assert outcome.captcha("read_by/default") + outcome.captcha("read_by/generalist") == outcome.captcha("attempts")
    assert not outcome.captcha("other_views") or outcome.captcha("read_by/generalist")  # only the generalist reads other views
    assert outcome.captcha("image_errors") == outcome.captcha("gave_up") == 0
    assert any(r.levelno == logging.INFO and "Solved the captcha" in r.getMessage() and site.url in r.getMessage() for r in caplog.records)
    home = next(page for page in outcome.pages if page.url == site.url + "/")
    assert home.request.callback.__name__ == "parse" and "redirect_urls" in home.meta  # the spider's request, its meta


@pytest_twisted.ensureDeferred
async def test_the_default_route_reads_a_style_the_default_model_never_saw_with_the_generalist(demo_site):
    site = demo_site(style="night")  # example_project/demo_styles.py: the default model reads none of these
    outcome = await crawl(site, {"CAPTCHA_MAX_ATTEMPTS": 30}, **SMALL)
    assert_complete(outcome, site)
    assert outcome.captcha("read_by/generalist") == outcome.captcha("attempts") > 0
    assert not outcome.captcha("read_by/default")
    # the generalist, unsure of a style it never saw, reads other views of some images; never more than it read
    assert 0 <= outcome.captcha("other_views") <= outcome.captcha("attempts")


@pytest_twisted.ensureDeferred
async def test_polite_crawl_with_one_request_per_domain_and_repeated_captchas(demo_site):
    # The captcha page's request still counts in the slot while the image and the answer are fetched.
    site = demo_site(solve_every=10, captcha_mode="inline")
    outcome = await crawl(site, {"CONCURRENT_REQUESTS_PER_DOMAIN": 1})
    assert_complete(outcome, site)
    assert outcome.captcha("detected") >= len(site.expected_pages()) // 10


@pytest_twisted.ensureDeferred
async def test_always_reject_gives_up_after_max_attempts(demo_site, caplog):
    site = demo_site(always_reject=True, **SMALL)
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha"):
        outcome = await crawl(site, {"CAPTCHA_MAX_ATTEMPTS": 3})
    [error] = outcome.errors()
    assert isinstance(error, CaptchaUnsolved)
    assert error.url == site.url + "/" and "no answer accepted in 3 attempts" in str(error) and "rejected" in error.reason
    assert site.stats["answers"] == 3 and outcome.captcha("incorrect") == 3
    assert outcome.captcha("detected") == outcome.captcha("gave_up") == 1
    assert_consistent(outcome, site)
    assert any(r.levelno == logging.WARNING and site.url in r.getMessage() for r in caplog.records)


@pytest_twisted.ensureDeferred
async def test_pass_failed_gives_the_captcha_page_to_the_callback(demo_site):
    site = demo_site(always_reject=True, **SMALL)
    outcome = await crawl(site, {"CAPTCHA_MAX_ATTEMPTS": 2, "CAPTCHA_PASS_FAILED": True})
    assert not outcome.failures
    [page] = outcome.pages
    assert page.css("#captcha-image") and "rejected" in page.meta["captcha_failed"]
    assert outcome.captcha("gave_up") == 1 and site.stats["answers"] == 2


@pytest.mark.parametrize(("image_mode", "reason"), [("broken", "corrupt"), ("html", "looks like HTML")])
@pytest_twisted.ensureDeferred
async def test_unusable_image_fails_the_request_with_the_reason(demo_site, image_mode, reason):
    site = demo_site(image_mode=image_mode, **SMALL)
    outcome = await crawl(site)
    [error] = outcome.errors()
    assert isinstance(error, CaptchaImageError) and reason in error.reason and site.url in str(error), error
    assert outcome.captcha("gave_up") == outcome.captcha("detected") == 1
    assert outcome.captcha("image_errors") == site.stats["images"] == 8  # each attempt (CAPTCHA_MAX_ATTEMPTS) a fresh image
    assert site.stats["answers"] == 0
    assert_consistent(outcome, site)


@pytest_twisted.ensureDeferred
async def test_data_uri_image_needs_no_download(demo_site):
    site = demo_site(image_mode="data-uri", **SMALL)
    outcome = await crawl(site)
    assert_complete(outcome, site)
    assert outcome.captcha("solved") == 1
    assert outcome.stats["downloader/request_count"] == len(site.expected_pages()) + 2 + outcome.captcha("attempts")  # + redirect hop + captcha page


@pytest.mark.parametrize(("mode", "status"), [("redirect", 403), ("inline", 403), ("inline", 503)])
@pytest_twisted.ensureDeferred
async def test_captcha_served_with_an_error_status(demo_site, mode, status):
    site = demo_site(captcha_status=status, captcha_mode=mode, **SMALL)
    outcome = await crawl(site)
    assert_complete(outcome, site)
    assert outcome.captcha("solved") == 1
    assert "retry/count" not in outcome.stats  # solved before RetryMiddleware could retry the 503 page


@pytest_twisted.ensureDeferred
async def test_concurrent_requests_behind_one_captcha_solve_once(demo_site):
    site = demo_site(**SMALL)
    paths = tuple(f"/item/{pid}" for pid in site.products)
    # A first response gives the crawl its session cookie; then every product is asked for at once.
    outcome = await crawl(site, start_paths=("/captcha?next=/",), meta={"captcha_skip": True}, then=paths, follow=False)
    assert not outcome.failures
    assert sorted(page.url for page in outcome.pages[1:]) == sorted(site.url + path for path in paths)
    assert site.stats["sessions"] == 1
    assert outcome.captcha("detected") == outcome.captcha("solved") == site.stats["answers_correct"] == 1
    assert outcome.captcha("waited") >= 1  # the others waited for that solve and went on without one
    assert site.stats["images"] == outcome.captcha("attempts") + outcome.captcha("low_confidence")
    assert_consistent(outcome, site)


@pytest_twisted.ensureDeferred
async def test_each_cookiejar_solves_its_own_captcha(demo_site):
    site = demo_site(**SMALL)
    outcome = await crawl(site, start_paths=("/", "/", "/"), jars=3)
    assert not outcome.failures
    assert outcome.captcha("detected") == outcome.captcha("solved") == 3
    assert site.stats["sessions"] == 3 and site.stats["answers_correct"] == 3
    assert {item["jar"] for item in outcome.items} == {0, 1, 2}
    assert len(outcome.items) == 3 * site.expected_items()  # each session crawled the whole catalogue
    assert_consistent(outcome, site)


@pytest_twisted.ensureDeferred
async def test_image_mode_puts_the_answer_in_meta(demo_site):
    site = demo_site(**SMALL)
    outcome = await crawl(site, start_paths=("/captcha/image?t=1", "/captcha?next=/"), meta={"captcha_image": True}, follow=False)
    [page] = outcome.pages
    assert page.url.endswith("/captcha/image?t=1")
    answer, confidence = page.meta["captcha_answer"], page.meta["captcha_confidence"]
    assert re.fullmatch(r"[0-9a-z]+", answer) and 0.0 <= confidence <= 1.0  # lower case: CAPTCHA_ANSWER_CASE
    [error] = outcome.errors()  # the HTML page asked for as an image
    assert isinstance(error, CaptchaImageError) and "looks like HTML" in error.reason
    assert outcome.captcha("detected") == 0 and site.stats["answers"] == 0


@pytest_twisted.ensureDeferred
async def test_captcha_skip_leaves_the_page_to_the_spider(demo_site):
    site = demo_site(**SMALL)
    outcome = await crawl(site, meta={"captcha_skip": True}, follow=False)
    [page] = outcome.pages
    assert page.css("#captcha-image") and outcome.captcha("detected") == 0


@pytest_twisted.ensureDeferred
async def test_low_confidence_answers_are_not_submitted(demo_site, tmp_path):
    import torch

    from scrapy_captcha import ModelConfig, build_model, save_weights

    # An untrained model is never sure of anything, whereas the bundled one may reach confidence 1.0.
    torch.manual_seed(0)
    untrained = save_weights(tmp_path / "untrained.pt", build_model(ModelConfig()), ModelConfig())
    site = demo_site(**SMALL)
    outcome = await crawl(site, {"CAPTCHA_WEIGHTS": str(untrained), "CAPTCHA_MIN_CONFIDENCE": 0.5, "CAPTCHA_MAX_ATTEMPTS": 3})
    [error] = outcome.errors()
    assert isinstance(error, CaptchaUnsolved) and ("CAPTCHA_MIN_CONFIDENCE 0.5" in error.reason or "read no text" in error.reason)
    assert outcome.captcha("low_confidence") == site.stats["images"] == 3
    assert site.stats["answers"] == 0
    assert_consistent(outcome, site)


@pytest_twisted.ensureDeferred
async def test_harvest_saves_accepted_images_after_existing_ones(demo_site, tmp_path):
    site = demo_site(solve_every=4, **SMALL)
    harvest = tmp_path / "harvest"
    harvest.mkdir()
    (harvest / "41-old.png").write_bytes(b"kept as is")
    outcome = await crawl(site, {"CAPTCHA_HARVEST_DIR": str(harvest), "CONCURRENT_REQUESTS_PER_DOMAIN": 1})
    assert_complete(outcome, site)
    saved = sorted(path.name for path in harvest.iterdir() if path.is_file())  # records: tests/test_recording.py
    assert not [name for name in saved if name.endswith(".tmp")]  # no half-written files
    new = [name for name in saved if name != "41-old.png" and not name.startswith(".")]  # the trainer skips dot files
    assert len(new) == outcome.captcha("solved") >= 2
    # a wrong answer's image goes to rejected/ (or unanswered/) and takes the next number too
    others = [path.name for folder in ("rejected", "unanswered") for path in (harvest / folder).glob("*.png")]
    assert sorted(int(name.split("-")[0].split(".")[0]) for name in new + others) == list(range(42, 42 + len(new) + len(others)))
    for name in new:
        assert re.fullmatch(r"\d+-[0-9a-z]{4}\.png", name)
        with Image.open(harvest / name) as image:
            assert image.format == "PNG" and image.size == (160, 60)


@pytest_twisted.ensureDeferred
async def test_addon_enables_the_middleware(demo_site):
    site = demo_site(**SMALL)
    outcome = await crawl(site, {"DOWNLOADER_MIDDLEWARES": {}, "ADDONS": {"scrapy_captcha.Addon": 0}})
    assert_complete(outcome, site)
    assert outcome.captcha("solved") == 1


def test_addon_keeps_a_priority_the_project_chose():
    settings = Settings({"DOWNLOADER_MIDDLEWARES": {}})
    Addon().update_settings(settings)
    assert settings.getdict("DOWNLOADER_MIDDLEWARES") == {CaptchaMiddleware: PRIORITY}
    settings = Settings({"DOWNLOADER_MIDDLEWARES": {"scrapy_captcha.CaptchaMiddleware": 123}})
    Addon().update_settings(settings)
    assert settings.getdict("DOWNLOADER_MIDDLEWARES") == {"scrapy_captcha.CaptchaMiddleware": 123}


def build(**settings: Any) -> CaptchaMiddleware:
    return CaptchaMiddleware.from_crawler(get_crawler(settings_dict=settings))


def test_disabled_middleware_is_not_configured():
    with pytest.raises(NotConfigured):
        build(CAPTCHA_ENABLED=False)


@pytest.mark.parametrize(("settings", "message"), [
    ({"CAPTCHA_MAX_ATTEMPTS": 0}, "CAPTCHA_MAX_ATTEMPTS must be 1 or more"),
    ({"CAPTCHA_MAX_ATTEMPTS": "many"}, "CAPTCHA_MAX_ATTEMPTS"),
    ({"CAPTCHA_MIN_CONFIDENCE": 1.5}, "CAPTCHA_MIN_CONFIDENCE must be between 0 and 1"),
    ({"CAPTCHA_ANSWER_CASE": "title"}, "CAPTCHA_ANSWER_CASE must be one of"),
    ({"CAPTCHA_ALPHABET": "!§"}, "shares no character with the model's alphabet"),  # in no model's alphabet
    ({"CAPTCHA_ANSWER_LENGTH": "four"}, "CAPTCHA_ANSWER_LENGTH must be a number of characters (4) or a range (4-6)"),
    ({"CAPTCHA_ANSWER_LENGTH": "6-4"}, "CAPTCHA_ANSWER_LENGTH must be 1 or more, shortest first"),
    ({"CAPTCHA_ANSWER_LENGTH": 40}, "CAPTCHA_ANSWER_LENGTH 40-40: the model reads at most"),
    ({"CAPTCHA_FORM_SELECTOR": "form[action="}, "CAPTCHA_FORM_SELECTOR 'form[action=' is not a valid"),
    ({"CAPTCHA_IMAGE_SELECTOR": "//img[@id="}, "CAPTCHA_IMAGE_SELECTOR"),
    ({"CAPTCHA_DEVICE": "toaster"}, "CAPTCHA_DEVICE 'toaster' is not a torch device"),
])
def test_bad_settings_are_refused_at_start_up(settings, message):
    with pytest.raises(CaptchaSettingsError, match=re.escape(message)):
        build(**settings)


def test_a_length_only_the_generalist_reads_is_taken_by_the_route_not_refused(caplog):
    # bettercaptcha's 12 characters: the route's default model reads at most 8, its generalist 12
    middleware = build(CAPTCHA_ANSWER_LENGTH=12)
    assert middleware.rules.unable == {"first"} and middleware.rules.rules["otherwise"].lengths == (12, 12)
    assert "reads every captcha with its 'otherwise' model (generalist)" in caplog.text


def test_harvest_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_HARVEST_DIR"):
        build(CAPTCHA_HARVEST_DIR=str(blocker / "harvest"))


@pytest_twisted.ensureDeferred
async def test_unusable_weights_stop_the_crawl_with_the_reason(demo_site, tmp_path):
    site = demo_site(**SMALL)
    missing = tmp_path / "missing.pt"
    with pytest.raises(WeightsError, match=re.escape(str(missing))):
        await crawl(site, {"CAPTCHA_WEIGHTS": str(missing)})
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a weights file")
    with pytest.raises(WeightsError, match=re.escape(str(garbage))):
        build(CAPTCHA_WEIGHTS=str(garbage))
    assert site.stats["answers"] == 0


@pytest_twisted.ensureDeferred
async def test_case_sensitive_site_with_answers_as_read(demo_site):
    site = demo_site(case_sensitive=True, **SMALL)
    outcome = await crawl(site, {"CAPTCHA_ANSWER_CASE": "as-is"})
    assert_complete(outcome, site)
    assert outcome.captcha("solved") == 1


@pytest_twisted.ensureDeferred
async def test_answer_length_setting_reaches_the_answers(demo_site, tmp_path):
    from scrapy_captcha.recording import read_attempts

    site = demo_site(**SMALL)
    outcome = await crawl(site, {"CAPTCHA_ANSWER_LENGTH": "4"})  # the demo's captchas: 4 characters
    assert_complete(outcome, site)
    site = demo_site(**SMALL)
    # every answer 5 characters long, hence wrong (and unsure: submitted only because the floor is 0)
    outcome = await crawl(site, {"CAPTCHA_ANSWER_LENGTH": 5, "CAPTCHA_MAX_ATTEMPTS": 2, "CAPTCHA_MIN_CONFIDENCE": 0,
                                 "CAPTCHA_HARVEST_DIR": str(tmp_path / "recording")})
    assert outcome.captcha("solved") == 0 and outcome.captcha("incorrect") == site.stats["answers_wrong"] == 2
    answers = [attempt.answer for attempt in read_attempts(tmp_path / "recording")]
    assert len(outcome.failures) == 1 and len(answers) == 2 and all(len(answer) == 5 for answer in answers), answers


@pytest_twisted.ensureDeferred
async def test_per_request_selectors_override_the_heuristics(demo_site):
    site = demo_site(**SMALL)
    meta = {"captcha_form_selector": "form[action='/captcha/verify']", "captcha_image_selector": "//img[@id='captcha-image']", "captcha_field": "answer"}
    outcome = await crawl(site, meta=meta, follow=False)
    [page] = outcome.pages
    assert page.css("nav.categories") and outcome.captcha("solved") == 1
    outcome = await crawl(site, meta={"captcha_image_selector": "img.not-there"}, follow=False)
    [page] = outcome.pages
    assert page.css("#captcha-image") and outcome.captcha("detected") == 0  # not a captcha page by that selector


def test_answer_rules_fold_case_and_restrict_the_alphabet():
    from captcha.image import ImageCaptcha

    from scrapy_captcha import Solver
    from scrapy_captcha.answers import answer_rules
    from scrapy_captcha.solver import read_answer

    solver = Solver.from_path()
    config = solver.config
    assert answer_rules(config, "as-is", None) is None
    lower = answer_rules(config, "lower", None)
    assert lower.codec.alphabet == "".join(dict.fromkeys(config.alphabet.lower()))  # folded, in the model's order
    digits = answer_rules(config, "as-is", "0123456789")
    assert digits.codec.alphabet == "0123456789"
    image = ImageCaptcha(160, 60).generate("4821").getvalue()
    for rules, allowed in ((lower, lower.codec.alphabet), (digits, "0123456789")):
        prediction, seconds = read_answer(solver, rules, image)
        assert prediction.text and set(prediction.text) <= set(allowed) and 0 <= prediction.confidence <= 1 and seconds > 0


def test_answer_rules_with_the_seed_one_hot_head():
    import torch

    from scrapy_captcha import ModelConfig, Solver, Weights, build_model
    from scrapy_captcha.answers import answer_rules
    from scrapy_captcha.solver import read_answer

    config = ModelConfig(arch="seed-vgg", max_length=4)
    torch.manual_seed(0)
    solver = Solver(Weights(config, build_model(config).state_dict()))  # untrained: any reading will do
    rules = answer_rules(config, "upper", "ABC123")
    assert rules.one_hot and rules.codec.alphabet == "123ABC"
    prediction, _ = read_answer(solver, rules, to_bytes(Image.new("L", (160, 60), 255), "PNG"))
    assert len(prediction.text) == 4 and set(prediction.text) <= set("123ABC")


def to_bytes(image: Image.Image, kind: str) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()
