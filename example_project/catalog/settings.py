"""Settings of the example project: a plain Scrapy project with scrapy-captcha switched on.

The only line scrapy-captcha needs is the ``DOWNLOADER_MIDDLEWARES`` entry; with no ``CAPTCHA_*``
setting it solves with the bundled model and finds captcha forms by itself.
"""

BOT_NAME = "catalog"

# Relative to this package, so the project works both as `catalog` (scrapy crawl, from
# example_project/) and as `example_project.catalog` (python -m example_project.demo).
SPIDER_MODULES = [f"{__package__}.spiders"]
NEWSPIDER_MODULE = SPIDER_MODULES[0]

# 585: after the redirect, compression and cookie middlewares on the response path, before the
# meta-refresh and retry ones
# (scrapy_captcha.middleware.PRIORITY explains why; a test keeps the two equal). Or, as an add-on:
# ADDONS = {"scrapy_captcha.Addon": 0}
DOWNLOADER_MIDDLEWARES = {
    "scrapy_captcha.CaptchaMiddleware": 585,
}

# Where the catalog spider starts; `-a base_url=...` wins. The demo site listens here when started
# with `python -m example_project.demo_site --port 8080`.
DEMO_SITE_URL = "http://127.0.0.1:8080"

ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS_PER_DOMAIN = 8
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
TELNETCONSOLE_ENABLED = False
