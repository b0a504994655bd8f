"""Crawl: the example spider over the demo shop with captcha gates on and off, in the same run.

The demo site runs in this process (a background thread) and each crawl in a fresh interpreter
(``python -m benchmarks.crawl URL ...``, since a Twisted reactor cannot restart), which prints
the crawl's stats as JSON on its last line. Gates on means the site asks for a new captcha every
``solve_every`` catalogue pages of a session; gates off means the same site without captchas.
Both use the example project's settings (the middleware on) with ``LOG_LEVEL = WARNING``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .machine import REPO, shell

CAPTCHA_STATS = ("detected", "attempts", "solved", "solved_first_attempt", "incorrect", "low_confidence",
                 "image_errors", "gave_up", "solve_time", "waited")


@dataclass(frozen=True)
class CrawlPlan:
    """The catalogue's size, the gate, the concurrency levels and how many runs of each."""

    categories: int = 6
    items_per_category: int = 200
    page_size: int = 25
    solve_every: int = 50
    concurrency: tuple[tuple[str, int, int], ...] = (("Scrapy defaults (16, 8 per domain)", 16, 8),
                                                     ("32 (32 per domain)", 32, 32))
    repeats: int = 3


def worker_command(url: str, concurrent: int, per_domain: int, weights: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.crawl", url, "--concurrent-requests", str(concurrent),
            "--per-domain", str(per_domain)]
    return argv + (["--weights", str(weights)] if weights else [])


def crawl_once(plan: CrawlPlan, gate: bool, concurrent: int, per_domain: int, weights: Path | None,
               timeout: float) -> dict[str, Any]:
    """One crawl of a fresh demo site; the crawl's and the site's figures."""
    from example_project.demo_site import DemoSite, SiteOptions

    options = SiteOptions(categories=plan.categories, items_per_category=plan.items_per_category,
                          page_size=plan.page_size, gate=gate, solve_every=plan.solve_every if gate else 0)
    with DemoSite(options) as site:
        url = site.url
        argv = worker_command(url, concurrent, per_domain, weights)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if done.returncode != 0:
            raise RuntimeError(f"{shell(argv)} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
        stats = json.loads(done.stdout.strip().splitlines()[-1])
        expected = site.expected_pages()
        reached = len(expected & site.served_pages)
        site_stats = dict(site.stats)
        expected_items = site.expected_items()
    elapsed = stats.get("elapsed_time_seconds") or float("nan")
    captcha = {name: stats.get(f"captcha/{name}", 0) for name in CAPTCHA_STATS}
    return {
        "gate": gate,
        "elapsed_seconds": elapsed,
        "pages": reached,
        "expected_pages": len(expected),
        "pages_per_second": reached / elapsed,
        "items": stats.get("item_scraped_count", 0),
        "expected_items": expected_items,
        "complete": reached == len(expected) and stats.get("item_scraped_count", 0) == expected_items,
        "requests": stats.get("downloader/request_count", 0),
        "failed_requests": stats.get("catalog/failed_requests", 0),
        "captcha": captcha,
        "site": site_stats,
        "command": shell(argv).replace(url, "URL"),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run's figures (by elapsed time), plus the derived captcha figures."""
    ordered = sorted(runs, key=lambda r: r["elapsed_seconds"])
    median = dict(ordered[len(ordered) // 2])
    median["runs"] = len(runs)
    median["elapsed_seconds_all"] = [r["elapsed_seconds"] for r in runs]
    median["pages_per_second_median"] = statistics.median(r["pages_per_second"] for r in runs)
    captcha = median["captcha"]
    solved = captcha["solved"]
    median["captchas_met"] = captcha["detected"]
    median["solved_first_time"] = captcha["solved_first_attempt"]
    median["attempts_per_solved"] = captcha["attempts"] / solved if solved else None
    median["solve_share"] = captcha["solve_time"] / median["elapsed_seconds"] if median["elapsed_seconds"] else None
    return median


def run_plan(plan: CrawlPlan, weights: Path | None = None, timeout: float = 300) -> list[dict[str, Any]]:
    """Gates off and on at each concurrency level, alternating, ``plan.repeats`` times each."""
    results = []
    for label, concurrent, per_domain in plan.concurrency:
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for _ in range(plan.repeats):
            for gate in (False, True):
                runs[gate].append(crawl_once(plan, gate, concurrent, per_domain, weights, timeout))
        off, on = summarise(runs[False]), summarise(runs[True])
        results.append({
            "concurrency": label,
            "concurrent_requests": concurrent,
            "per_domain": per_domain,
            "off": off,
            "on": on,
            "speed_ratio": on["pages_per_second_median"] / off["pages_per_second_median"],
        })
    return results


def plan_dict(plan: CrawlPlan) -> dict[str, Any]:
    return asdict(plan)


# -- the crawl itself, in its own process ------------------------------------------------------


def _json_safe(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crawl",
                                     description="Crawl the demo shop at URL with the catalog spider; print its stats as JSON.")
    parser.add_argument("url")
    parser.add_argument("--concurrent-requests", type=int, default=16)
    parser.add_argument("--per-domain", type=int, default=8)
    parser.add_argument("--weights", help="CAPTCHA_WEIGHTS (default: the bundled model)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from example_project.catalog.spiders.catalog import CatalogSpider

    settings = Settings()
    settings.setmodule("example_project.catalog.settings", priority="project")
    settings.set("CONCURRENT_REQUESTS", args.concurrent_requests, priority="cmdline")
    settings.set("CONCURRENT_REQUESTS_PER_DOMAIN", args.per_domain, priority="cmdline")
    settings.set("LOG_LEVEL", args.log_level, priority="cmdline")
    if args.weights:
        settings.set("CAPTCHA_WEIGHTS", args.weights, priority="cmdline")
    process = CrawlerProcess(settings, install_root_handler=True)
    crawler = process.create_crawler(CatalogSpider)
    process.crawl(crawler, base_url=args.url)
    process.start()
    stats = {key: _json_safe(value) for key, value in crawler.stats.get_stats().items()}
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
