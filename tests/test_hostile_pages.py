"""Hostile and broken captcha pages (issue 10): nothing is sent off-site, images are capped, answers
are sent once, image errors cost one attempt, and every failure is a counted CaptchaError.

Each scenario runs a real crawl against a :class:`CaptchaSite` on 127.0.0.1; a second server (the
recorder, same host, another port) logs any request that reaches it, so "nothing was sent there"
is asserted, not assumed.
"""

from __future__ import annotations

import logging
import struct
import zlib
from typing import Any

import pytest
import pytest_twisted

from scrapy_captcha import BUNDLED_WEIGHTS, CaptchaFormError, CaptchaImageError, CaptchaSettingsError, CaptchaUnsolved
from scrapy_captcha.errors import CaptchaPolicyError
from tests.hostile_site import CaptchaSite, Server, assert_counted, captcha_png, crawl, png

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")

ATTEMPTS = 3  # CAPTCHA_MAX_ATTEMPTS in tests.hostile_site


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A 74-byte PNG declaring 900 Mpx."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


# (id, CaptchaSite keyword arguments with {recorder} and {recorder_port} filled in, extra routes)
OFFSITE = [
    ("answer-to-another-port", {"action": "{recorder}/steal"}, {}),
    ("answer-to-another-host", {"action": "http://localhost:{recorder_port}/steal"}, {}),
    ("answer-to-file", {"action": "file:///tmp/scrapy-captcha-answer"}, {}),
    ("answer-to-data", {"action": "data:text/html,<p>thanks</p>"}, {}),
    ("answer-to-javascript", {"action": "javascript:alert(1)"}, {}),
    ("answer-to-mailto", {"action": "mailto:thief@example.com"}, {}),
    ("image-from-another-port", {"image": "{recorder}/captcha.png"}, {}),
    ("image-from-another-host", {"image": "http://localhost:{recorder_port}/captcha.png"}, {}),
    ("image-from-file", {"image": "file:///etc/passwd"}, {}),
    ("image-javascript", {"image": "javascript:alert(1)"}, {}),
    ("image-mailto", {"image": "mailto:thief@example.com"}, {}),
    ("image-malformed-url", {"image": "http://[::1"}, {}),
    ("image-redirects-offsite", {"image": "/moved.png"}, {"/moved.png": (302, {"Location": "{recorder}/captcha.png"}, b"")}),
    ("answer-redirects-offsite", {}, {"/verify": (307, {"Location": "{recorder}/steal"}, b"")}),
]


def _fill(value: Any, recorder: Server) -> Any:
    if isinstance(value, str):
        return value.replace("{recorder}", recorder.url).replace("{recorder_port}", str(recorder.port))
    if isinstance(value, tuple):
        return tuple(_fill(item, recorder) for item in value)
    if isinstance(value, dict):
        return {key: _fill(item, recorder) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("site_args", "routes"), [case[1:] for case in OFFSITE], ids=[case[0] for case in OFFSITE])
@pytest_twisted.ensureDeferred
async def test_nothing_is_sent_where_the_policy_does_not_allow(servers, caplog, site_args, routes):
    recorder = servers(Server(default=(200, {"Content-Type": "image/png"}, captcha_png())))
    site = servers(CaptchaSite(routes=_fill(routes, recorder), **_fill(site_args, recorder)))
    with caplog.at_level(logging.DEBUG):
        outcome = await crawl([site.url + "/page/1"])
    assert recorder.hits == []  # no image fetch, no answer, no cookie, no Referer
    [error] = outcome.errors()
    assert isinstance(error, CaptchaPolicyError), repr(error)
    assert error.url == site.url + "/page/1"
    assert "http and https" in error.reason or "another origin" in error.reason or "malformed" in error.reason or "data:" in error.reason
    assert outcome.captcha("policy_refused") == 1 and outcome.captcha("gave_up") == 1
    if "/verify" not in routes:  # otherwise the answer went to the site, and its redirect was refused
        assert site.hits_to("/verify") == []
    assert not outcome.pages
    assert_counted(outcome)
    assert "root:" not in caplog.text  # /etc/passwd was never read


@pytest_twisted.ensureDeferred
async def test_image_cdn_listed_in_allowed_hosts_gets_the_origin_as_referer(servers):
    cdn = servers(Server(routes={"/captcha.png": (200, {"Content-Type": "image/png"}, captcha_png())}))
    site = servers(CaptchaSite(image=f"{cdn.url}/captcha.png"))
    outcome = await crawl([site.url + "/page/1"], {"CAPTCHA_ALLOWED_HOSTS": [f"127.0.0.1:{cdn.port}"]})
    assert not outcome.failures and outcome.captcha("solved") == 1
    [image] = cdn.hits
    assert image.headers["referer"] == site.url + "/"  # the origin, not the page's URL
    [answer] = site.hits_to("/verify")
    assert answer.headers["referer"] == site.url + "/page/1"  # same origin: the full page URL


@pytest_twisted.ensureDeferred
async def test_allowed_domains_allow_other_ports_of_their_hosts(servers):
    other = servers(Server(routes={"/captcha.png": (200, {"Content-Type": "image/png"}, captcha_png())}))
    site = servers(CaptchaSite(image=f"{other.url}/captcha.png"))
    outcome = await crawl([site.url + "/page/1"], allowed_domains=["127.0.0.1"])
    assert not outcome.failures and outcome.captcha("solved") == 1 and len(other.hits) == 1


# (id, CaptchaSite keyword arguments, settings, error class, words in the reason: a string, or a tuple of alternatives)
BROKEN = [
    ("image-declaring-900-mpx", {"image_reply": (200, {"Content-Type": "image/png"}, png_bomb())}, {},
     CaptchaImageError, "900,000,000 pixels, over the cap of 4,000,000"),
    ("image-over-max-bytes", {"image_reply": (200, {"Content-Type": "image/png"}, b"root:x:0:0:" + bytes(300_000))},
     {"CAPTCHA_MAX_IMAGE_BYTES": 100_000}, CaptchaImageError, "CAPTCHA_MAX_IMAGE_BYTES"),
    ("data-uri-image-over-max-bytes", {"image": "data:image/png;base64," + "A" * 200_000},
     {"CAPTCHA_MAX_IMAGE_BYTES": 100_000}, CaptchaImageError, "data: URI image holds over CAPTCHA_MAX_IMAGE_BYTES"),
    ("image-over-max-pixels", {"image_reply": (200, {"Content-Type": "image/png"}, png(400, 300))},
     {"CAPTCHA_MAX_IMAGE_PIXELS": 100_000}, CaptchaImageError, "over the cap of 100,000 pixels"),
    ("black-image-not-answered", {"image_reply": (200, {"Content-Type": "image/png"}, png(160, 60, colour=0))}, {},
     CaptchaUnsolved, ("below CAPTCHA_MIN_CONFIDENCE", "read no text in the image")),  # a CTC model may read nothing there
    ("image-always-404", {"image_reply": (404, {}, b"gone")}, {}, CaptchaImageError, "answered HTTP 404"),
    ("answer-answered-500", {"verify_reply": (500, {"Content-Type": "text/html"}, b"<html>oops</html>")}, {},
     CaptchaFormError, "form refused with HTTP 500"),
    ("image-without-src", {"image": ""}, {}, CaptchaImageError, "has no src"),
]


@pytest.mark.parametrize(("site_args", "settings", "error_class", "words"), [case[1:] for case in BROKEN],
                         ids=[case[0] for case in BROKEN])
@pytest_twisted.ensureDeferred
async def test_broken_images_and_forms_end_in_a_counted_captcha_error(servers, caplog, site_args, settings, error_class, words):
    site = servers(CaptchaSite(**site_args))
    with caplog.at_level(logging.DEBUG):
        outcome = await crawl([site.url + "/page/1"], settings)
    [error] = outcome.errors()
    assert type(error) is error_class and any(w in error.reason for w in ((words,) if isinstance(words, str) else words)), repr(error)
    assert error.url == site.url + "/page/1"
    assert outcome.captcha("detected") == outcome.captcha("gave_up") == 1
    assert_counted(outcome)
    if error_class is CaptchaImageError and "no src" not in words:
        assert outcome.captcha("image_errors") == ATTEMPTS  # each attempt a fresh captcha
        assert len(site.hits_to("/image")) <= ATTEMPTS
    if error_class is not CaptchaFormError:
        assert site.hits_to("/verify") == []  # nothing submitted
    else:
        assert len(site.hits_to("/verify")) == ATTEMPTS  # one POST per attempt, never retried
    assert "root:x" not in caplog.text and "root:x" not in str(error)  # no response bytes in logs or errors


@pytest.mark.parametrize("failure", ["404", "timeout"])
@pytest_twisted.ensureDeferred
async def test_a_transient_image_error_leads_to_a_fresh_captcha(servers, failure):
    import time

    def hang(hit):
        time.sleep(2)
        return 200, {"Content-Type": "image/png"}, captcha_png()

    first = (404, {}, b"gone") if failure == "404" else hang
    replies = [first, lambda hit: (200, {"Content-Type": "image/png"}, captcha_png())]
    calls: list[Any] = []

    def image(hit):
        calls.append(hit)
        reply = replies[min(len(calls), 2) - 1]
        return reply(hit) if callable(reply) else reply

    site = servers(CaptchaSite(image_reply=image))
    outcome = await crawl([site.url + "/page/1"], {"DOWNLOAD_TIMEOUT": 1})
    assert not outcome.failures, outcome.errors()
    [page] = outcome.pages
    assert page.css("h1.content") and outcome.captcha("solved") == 1 and outcome.captcha("image_errors") == 1
    assert len(calls) == 2
    assert_counted(outcome)


@pytest_twisted.ensureDeferred
async def test_a_captcha_page_that_meta_refreshes_to_itself_is_solved(servers):
    site = servers(CaptchaSite(head="<meta http-equiv='refresh' content='5'>"))
    # dont_filter False: a refresh to the same URL is a duplicate request the dupefilter drops
    outcome = await crawl([site.url + "/page/1", site.url + "/page/2"], {"CONCURRENT_REQUESTS": 1}, dont_filter=False)
    assert not outcome.failures
    assert sorted(page.url for page in outcome.pages) == [site.url + "/page/1", site.url + "/page/2"]
    assert all(page.css("h1.content") for page in outcome.pages)
    assert outcome.captcha("solved") == 1
    assert_counted(outcome)


@pytest_twisted.ensureDeferred
async def test_a_wrong_answer_page_that_meta_refreshes_is_not_followed(servers):
    # The site shows the captcha again (with a refresh) after every answer: the middleware tries the
    # new captcha instead of following the refresh until RedirectMiddleware gives up.
    page = CaptchaSite(head="<meta http-equiv='refresh' content='0'>").captcha_page("/page/1")
    site = servers(CaptchaSite(head="<meta http-equiv='refresh' content='0'>",
                               verify_reply=(200, {"Content-Type": "text/html"}, page.encode())))
    outcome = await crawl([site.url + "/page/1"])
    [error] = outcome.errors()
    assert isinstance(error, CaptchaUnsolved) and "rejected" in error.reason
    assert len(site.hits_to("/verify")) == ATTEMPTS
    assert_counted(outcome)


@pytest.mark.parametrize(("settings", "message"), [
    ({"CAPTCHA_ALLOWED_HOSTS": ["https://cdn.example.com/"]}, "CAPTCHA_ALLOWED_HOSTS"),
    ({"CAPTCHA_ALLOWED_HOSTS": ["cdn.example.com:http"]}, "CAPTCHA_ALLOWED_HOSTS"),
    ({"CAPTCHA_MAX_IMAGE_BYTES": 0}, "CAPTCHA_MAX_IMAGE_BYTES must be a whole number above 0"),
    ({"CAPTCHA_MAX_IMAGE_PIXELS": "lots"}, "CAPTCHA_MAX_IMAGE_PIXELS must be a whole number above 0"),
])
def test_bad_policy_and_cap_settings_are_refused_at_start_up(settings, message):
    from scrapy.utils.test import get_crawler

    from scrapy_captcha.settings import read_settings

    with pytest.raises(CaptchaSettingsError, match=message):
        read_settings(get_crawler(settings_dict=settings).settings)


def test_settings_defaults_for_the_caps_and_the_confidence_floor():
    from scrapy.utils.test import get_crawler

    from scrapy_captcha.policy import HostRule
    from scrapy_captcha.settings import read_settings

    config = read_settings(get_crawler(settings_dict={"CAPTCHA_ALLOWED_HOSTS": "cdn.example.com,img.example.org:8443"}).settings)
    assert config.max_image_bytes == 2 * 1024 * 1024 and config.max_image_pixels == 4_000_000
    assert config.min_confidence == 0.02
    assert config.allowed_hosts == (HostRule("cdn.example.com"), HostRule("img.example.org", 8443))


@pytest_twisted.ensureDeferred
async def test_a_bad_per_request_selector_is_a_captcha_error_naming_the_page(servers):
    site = servers(CaptchaSite())
    outcome = await crawl([site.url + "/page/1"], meta=[{"captcha_form_selector": "form[action="}])
    [error] = outcome.errors()
    assert isinstance(error, CaptchaFormError) and "invalid captcha selector" in error.reason, repr(error)
    assert error.url == site.url + "/page/1" and outcome.captcha("detected") == 0
    assert site.hits_to("/image") == site.hits_to("/verify") == []


@pytest_twisted.ensureDeferred
async def test_image_mode_downloads_at_most_max_image_bytes(servers):
    big = Server(routes={"/big.png": (200, {"Content-Type": "image/png"}, bytes(300_000)),
                         "/small.png": (200, {"Content-Type": "image/png"}, captcha_png())})
    site = servers(big)
    outcome = await crawl([site.url + "/big.png", site.url + "/small.png"], {"CAPTCHA_MAX_IMAGE_BYTES": 100_000},
                          meta=[{"captcha_image": True}, {"captcha_image": True}])
    [page] = outcome.pages
    assert page.url.endswith("/small.png") and page.meta["captcha_answer"]
    [error] = outcome.errors()
    assert "download max size (100000)" in str(error)  # Scrapy cancelled the download at the cap
