"""One stuck captcha must not starve the crawl (issue 10, defect 5): a failed round is shared by the
requests that waited for it, and waiting requests leave CONCURRENT_REQUESTS to the other sessions.

Throughput is measured in ``benchmarks/``; these tests check the behaviour: rounds per stuck
session, and other sessions' pages arriving while the stuck round still runs.
"""

from __future__ import annotations

import threading

import pytest
import pytest_twisted

from scrapy_captcha import BUNDLED_WEIGHTS, CaptchaImageError
from tests.hostile_site import CaptchaSite, Hit, Server, assert_counted, crawl

pytestmark = pytest.mark.skipif(not BUNDLED_WEIGHTS.is_file(), reason=f"no bundled weights at {BUNDLED_WEIGHTS}")


@pytest_twisted.ensureDeferred
async def test_requests_waiting_for_a_failed_round_fail_with_it(servers):
    # The image never answers in time: one round (2 attempts), not one per waiting request.
    def hang(hit: Hit):
        threading.Event().wait(3)
        return 404, {}, b"too late"

    stuck = servers(CaptchaSite(image_reply=hang))
    urls = [f"{stuck.url}/page/{n}" for n in range(12)]
    outcome = await crawl(urls, {"DOWNLOAD_TIMEOUT": 1, "CAPTCHA_MAX_ATTEMPTS": 2, "CONCURRENT_REQUESTS": 4})
    assert not outcome.pages
    errors = outcome.errors()
    assert len(errors) == 12 and all(isinstance(error, CaptchaImageError) for error in errors)
    assert outcome.captcha("detected") == outcome.captcha("gave_up") == 1
    assert len(stuck.hits_to("/image")) == 2  # one round of two attempts
    assert outcome.captcha("failed_with_round") == 11
    assert sorted(error.url for error in errors) == sorted(urls)  # each error names its own page
    shared = [error for error in errors if "the session's captcha round" in error.reason]
    assert len(shared) == 11
    assert_counted(outcome)


@pytest_twisted.ensureDeferred
async def test_other_sessions_pages_arrive_while_a_round_is_stuck(servers):
    # The stuck site's image hangs until the healthy site has served every page (or 20 s pass):
    # if the waiting requests of the stuck session held CONCURRENT_REQUESTS, the healthy pages
    # could only arrive after that timeout.
    healthy_done = threading.Event()
    pages = 16
    served: list[Hit] = []

    def healthy_page(hit: Hit):
        served.append(hit)
        if len(served) == pages:
            healthy_done.set()
        return 200, {"Content-Type": "text/html"}, b"<html><body><p class='content'>ok</p></body></html>"

    released_in_time: list[bool] = []

    def hang(hit: Hit):
        released_in_time.append(healthy_done.wait(20))
        return 404, {}, b"gone"

    stuck = servers(CaptchaSite(image_reply=hang))
    healthy = servers(Server(default=healthy_page))
    urls = [f"{stuck.url}/page/{n}" for n in range(8)] + [f"{healthy.url}/item/{n}" for n in range(pages)]
    priorities = [10] * 8 + [0] * pages  # the stuck session's requests go first
    # CONCURRENT_REQUESTS 2: the stuck round takes one place (its request or its download), never both
    outcome = await crawl(urls, {"DOWNLOAD_TIMEOUT": 30, "CAPTCHA_MAX_ATTEMPTS": 1, "CONCURRENT_REQUESTS": 2}, priorities=priorities)
    assert released_in_time == [True]  # the healthy pages all arrived while the stuck image hung
    assert sorted(page.url for page in outcome.pages) == sorted(urls[8:])
    assert len(outcome.failures) == 8 and outcome.captcha("detected") == 1
    assert_counted(outcome)


@pytest_twisted.ensureDeferred
async def test_with_pass_failed_the_waiting_requests_get_their_page_and_the_reason(servers):
    def hang(hit: Hit):
        threading.Event().wait(3)
        return 404, {}, b"too late"

    stuck = servers(CaptchaSite(image_reply=hang))
    urls = [f"{stuck.url}/page/{n}" for n in range(8)]
    outcome = await crawl(urls, {"DOWNLOAD_TIMEOUT": 1, "CAPTCHA_MAX_ATTEMPTS": 1, "CONCURRENT_REQUESTS": 4,
                                 "CAPTCHA_PASS_FAILED": True})
    assert not outcome.failures
    assert sorted(page.url for page in outcome.pages) == sorted(urls)
    assert all(page.css("#captcha-image") and page.meta["captcha_failed"] for page in outcome.pages)
    # Requests that met the captcha during the round, and requests held back during it (sent
    # after it for their page), share its failure: one round in all.
    assert outcome.captcha("detected") == len(stuck.hits_to("/image")) == 1
    assert outcome.captcha("failed_with_round") == 7
    assert_counted(outcome)


def test_waiting_requests_leave_concurrent_requests_up_to_a_cap_per_session(monkeypatch):
    from types import SimpleNamespace

    import scrapy

    from scrapy_captcha import sessions
    from scrapy_captcha.sessions import Session, not_counted

    monkeypatch.setattr(sessions, "MAX_UNCOUNTED_WAITING", 2)
    requests = [scrapy.Request(f"http://site.example/{n}") for n in range(3)]
    downloader = SimpleNamespace(active=set(requests))
    crawler = SimpleNamespace(engine=SimpleNamespace(downloader=downloader, _slot=None))
    session = Session()
    with not_counted(crawler, requests[0], waiting_in=session), not_counted(crawler, requests[1], waiting_in=session):
        with not_counted(crawler, requests[2], waiting_in=session):
            assert downloader.active == {requests[2]} and session.uncounted == 2  # the third waits counted
        assert downloader.active == {requests[2]}
    assert downloader.active == set(requests) and session.uncounted == 0  # all back before the downloader sees them
