"""The ``catalog`` spider: the whole demo shop, home -> categories -> listing pages -> products."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from ..items import Product


class CatalogSpider(scrapy.Spider):
    """Crawls every category, listing page and product of the demo shop into :class:`Product` items.

    The shop's address comes from ``-a base_url=...`` or else the ``DEMO_SITE_URL`` setting. The
    spider has no captcha code: scrapy-captcha gets it past the shop's captchas.
    """

    name = "catalog"

    def __init__(self, base_url: str | None = None, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.base_url = base_url

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> CatalogSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.base_url = (spider.base_url or crawler.settings.get("DEMO_SITE_URL") or "").rstrip("/")
        if not spider.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"{cls.__name__} needs the demo site's address as -a base_url=http://HOST:PORT "
                f"or the DEMO_SITE_URL setting, got {spider.base_url!r}"
            )
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(f"{self.base_url}/", callback=self.parse, errback=self.failed)

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        """Home page: follow every category."""
        self.check_page(response, "nav.categories")
        yield from response.follow_all(css="nav.categories a.category", callback=self.parse_listing, errback=self.failed)

    def parse_listing(self, response: Response) -> Iterator[scrapy.Request]:
        """Listing page: follow its products and the next page."""
        self.check_page(response, "ul.products")
        yield from response.follow_all(css="ul.products a.product", callback=self.parse_product, errback=self.failed)
        yield from response.follow_all(css='a[rel="next"]', callback=self.parse_listing, errback=self.failed)

    def parse_product(self, response: Response) -> Iterator[Product]:
        product = Product(
            name=response.css("h1.name::text").get("").strip(),
            price=response.css("span.price::text").get("").strip().lstrip("$"),
            sku=response.css("dd.sku::text").get("").strip(),
            description=" ".join(response.css("div.description ::text").getall()).strip(),
            url=response.url,
        )
        missing = product.missing_fields()
        if missing:
            self.crawler.stats.inc_value("catalog/incomplete_pages")
            self.logger.warning("Product page without %s: %s", ", ".join(missing), response.url)
            return
        yield product

    def check_page(self, response: Response, selector: str) -> None:
        """Count and log a page that is not what its link promised (e.g. a captcha page)."""
        if not response.css(selector):
            self.crawler.stats.inc_value("catalog/incomplete_pages")
            self.logger.warning("Page without %s: %s", selector, response.url)

    def failed(self, failure: Failure) -> None:
        """Errback: a request that could not be fetched is counted and logged, never dropped silently."""
        self.crawler.stats.inc_value("catalog/failed_requests")
        self.logger.error("Request failed: %s (%s)", failure.request.url, failure.getErrorMessage())
