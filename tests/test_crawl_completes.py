"""A crawl that meets a captcha on every page still reaches every page: the engine must not close
the spider while a captcha round runs or requests wait for one (they are kept out of
CONCURRENT_REQUESTS, so Scrapy's own idle check cannot see them)."""

from __future__ import annotations

import pytest
import pytest_twisted

from test_middleware import crawl


@pytest.mark.parametrize("run", range(3))
@pytest_twisted.ensureDeferred
async def test_captcha_on_every_page_loses_no_request(demo_site, run):
    site = demo_site(categories=4, items_per_category=24, page_size=8, solve_every=1)
    outcome = await crawl(site)
    # Not assert_complete: with a captcha on every page, the page fetched again after a right
    # answer can already show the next captcha, which the middleware counts as incorrect.
    assert not outcome.failures, [str(error) for error in outcome.errors()]
    assert outcome.requested == len(outcome.pages)
    assert site.served_pages == site.expected_pages()
    assert len({item["sku"] for item in outcome.items}) == len(outcome.items) == site.expected_items()
    assert outcome.stats.get("finish_reason") == "finished"
    assert outcome.captcha("detected") == outcome.captcha("solved") >= len(site.expected_pages()) // 2
