"""One stuck captcha against the rest of the crawl (issue 10, defect 5), for :mod:`benchmarks.hostile`.

A few cookie sessions each crawl their own category's products of the demo shop, their requests
interleaved; with ``--with-stuck`` one more session does the same, but its captcha image never
arrives. ``DOWNLOAD_TIMEOUT=1``, no retries, ``CONCURRENT_REQUESTS=8``. The figure is the time from
the crawl's first request to the other sessions' last page, measured by the site, with and without
the stuck session: a stuck captcha should cost the other sessions little.

Worker: ``python -m benchmarks.stuck_captcha URL --sessions S --items I [--with-stuck]`` crawls a
running :func:`stuck_site_class` site and prints its stats as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .hostile import run_worker
from .machine import REPO


def stuck_site_class():
    from example_project.demo_site import DemoSite

    class StuckSite(DemoSite):
        """The demo shop where the session crawling the last category never gets its captcha image."""

        def __init__(self, options, stuck_category: str):
            super().__init__(options)
            self.stuck_category = stuck_category
            self.session_category: dict[str, str] = {}
            self.first_request: float | None = None
            self.last_other_page: float | None = None
            self.other_pages = 0
            self.released = threading.Event()

        def session(self, session_id):
            with self._lock:
                if self.first_request is None:
                    self.first_request = time.monotonic()
            return super().session(session_id)

        def admit(self, session, path):
            category = None
            if path.startswith("/item/"):
                category = self.products[int(path.rsplit("/", 1)[1])].category
                with self._lock:
                    self.session_category.setdefault(session.id, category)
            admitted = super().admit(session, path)
            if admitted and category != self.stuck_category:
                with self._lock:
                    self.other_pages += 1
                    self.last_other_page = time.monotonic()
            return admitted

        def draw_captcha(self, session):
            with self._lock:
                stuck = self.session_category.get(session.id) == self.stuck_category
            if stuck:
                self.released.wait(60)  # the image never comes: the crawler's download times out
            return super().draw_captcha(session)

        def stop(self):
            self.released.set()
            super().stop()

    return StuckSite


def export_tree(revision: str) -> Path:
    """The repository at git ``revision`` in a temporary folder, with today's benchmark and demo site
    files, so that the same measurement runs that revision's ``scrapy_captcha``."""
    tree = Path(tempfile.mkdtemp(prefix="stuck-before-"))
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    for name in ("benchmarks/__init__.py", "benchmarks/machine.py", "benchmarks/hostile.py", "benchmarks/stuck_captcha.py",
                 "example_project/demo_site.py", "example_project/demo_captchas.py"):
        shutil.copyfile(REPO / name, tree / name)
    return tree


def stuck_once(sessions: int, items: int, with_stuck: bool, timeout: float, tree: Path = REPO) -> dict[str, Any]:
    from example_project.demo_site import SiteOptions, category_names

    categories = sessions + 1
    stuck_category = category_names(categories)[-1]
    options = SiteOptions(categories=categories, items_per_category=items, page_size=items)
    site = stuck_site_class()(options, stuck_category).start()
    site._server.handle_error = lambda request, address: None  # the stuck image's client is gone when it is released
    try:
        args = [site.url, "--sessions", str(sessions), "--items", str(items)] + (["--with-stuck"] if with_stuck else [])
        result = run_worker("benchmarks.stuck_captcha", args, timeout, cwd=tree)
        expected = sessions * items
        result.update(with_stuck=with_stuck, other_pages=site.other_pages, expected_other_pages=expected,
                      other_sessions_seconds=(site.last_other_page - site.first_request)
                      if site.last_other_page is not None and site.first_request is not None else None)
    finally:
        site.stop()
    return result


def measure_stuck(sessions: int, items: int, repeats: int, timeout: float = 300, tree: Path = REPO) -> dict[str, Any]:
    """Crawls without and with the stuck session, alternating, ``repeats`` times each; the medians and their ratio."""
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for repeat in range(repeats):
        for with_stuck in (False, True):
            print(f"   stuck captcha {'with' if with_stuck else 'without'} the stuck session, run {repeat + 1}", flush=True)
            runs["with" if with_stuck else "without"].append(stuck_once(sessions, items, with_stuck, timeout, tree))

    def median(key: str) -> float | None:
        values = [r["other_sessions_seconds"] for r in runs[key] if r.get("other_sessions_seconds") is not None]
        return statistics.median(values) if values else None

    without, with_ = median("without"), median("with")
    return {"runs": runs, "other_sessions_seconds_without": without, "other_sessions_seconds_with": with_,
            "ratio": with_ / without if with_ and without else None,
            "all_other_pages_reached": all(r["other_pages"] == r["expected_other_pages"] for rs in runs.values() for r in rs),
            "other_pages_reached": {key: [r["other_pages"] for r in rs] for key, rs in runs.items()},
            "crawl_seconds": {key: statistics.median(r["elapsed_seconds"] for r in rs) for key, rs in runs.items()}}


def crawl_sessions(url: str, sessions: int, items: int) -> dict[str, Any]:
    """(In the worker) each session fetches its own category's products, interleaved, one cookiejar each."""
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    class Sessions(scrapy.Spider):
        name = "hostile-stuck"

        async def start(self):
            for item in range(items):
                for session in range(sessions):
                    product = session * items + item + 1
                    yield scrapy.Request(f"{url}/item/{product}", callback=self.parse, errback=self.failed,
                                         meta={"cookiejar": session})

        def parse(self, response):
            self.crawler.stats.inc_value("hostile/pages")

        def failed(self, failure):
            self.crawler.stats.inc_value("hostile/failed")
            self.crawler.stats.inc_value(f"hostile/failed/{failure.type.__name__}")

    settings = Settings()
    settings.setmodule("example_project.catalog.settings", priority="project")
    for name, value in {"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": False, "CONCURRENT_REQUESTS": 8,
                        "CONCURRENT_REQUESTS_PER_DOMAIN": 8, "DOWNLOAD_TIMEOUT": 1, "RETRY_ENABLED": False}.items():
        settings.set(name, value, priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(Sessions)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    return {"elapsed_seconds": stats.get("elapsed_time_seconds"), "pages": stats.get("hostile/pages", 0),
            "failed": stats.get("hostile/failed", 0),
            "failures": {key.rsplit("/", 1)[1]: value for key, value in stats.items() if key.startswith("hostile/failed/")},
            "captcha": {key.split("/", 1)[1]: value for key, value in stats.items() if key.startswith("captcha/")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stuck_captcha", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="a running stuck_site_class() site")
    parser.add_argument("--sessions", type=int, required=True, help="sessions besides the stuck one")
    parser.add_argument("--items", type=int, required=True, help="products per session")
    parser.add_argument("--with-stuck", action="store_true", help="add the session whose captcha never arrives")
    args = parser.parse_args(argv)
    print(json.dumps(crawl_sessions(args.url, args.sessions + args.with_stuck, args.items), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
