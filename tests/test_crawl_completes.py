"""A crawl that meets a captcha on every page still reaches every page: the engine must not close
the spider while a captcha round runs or requests wait for one (they are kept out of
CONCURRENT_REQUESTS, so Scrapy's own idle check cannot see them)."""

from __future__ import annotations

import pytest
import pytest_twisted

from test_middleware import assert_complete, crawl


@pytest.mark.parametrize("run", range(3))
@pytest_twisted.ensureDeferred
async def test_captcha_on_every_page_loses_no_request(demo_site, run):
    site = demo_site(categories=4, items_per_category=24, page_size=8, solve_every=1)
    outcome = await crawl(site)
    assert_complete(outcome, site)
    assert outcome.captcha("detected") >= len(site.expected_pages()) // 2
