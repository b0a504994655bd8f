"""``make demo``: start the demo shop, crawl it with the example project and scrapy-captcha, print a summary.

    python -m example_project.demo [--solve-every 10] [--mode inline] [--status 403] [-s NAME=VALUE ...]
    python -m example_project.demo --adapt [--rounds 3] [--style ribbon] [--record-dir DIR] [--weights W] [--adapt-from W]

The shop runs in this process on a free port; the ``catalog`` spider crawls it with the example
project's settings (scrapy-captcha enabled, bundled model) in an ``AsyncCrawlerProcess``. The exit
status is 0 when every catalogue page and every item was reached, 1 otherwise.

``--adapt`` shows the loop of issue 9 on a captcha style the bundled model was not trained on
(``example_project/demo_styles.py``): crawl with recording on (``CAPTCHA_HARVEST_DIR``), adapt
(``python -m trainer adapt``), crawl again with the adapted weights, ``--rounds`` times, printing
per round the captchas met, those accepted on the first try and the time of each step. Its exit
status is 0 when the last round accepted at least ``--goal`` of the captchas on the first try.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from scrapy import signals
from scrapy.crawler import AsyncCrawlerProcess, Crawler
from scrapy.settings import Settings

from .catalog.items import Product
from .catalog.spiders.catalog import CatalogSpider
from .demo_captchas import CAPTCHA_STYLES
from .demo_site import CAPTCHA_MODES, IMAGE_MODES, DemoSite, SiteOptions

SETTINGS_MODULE = "example_project.catalog.settings"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m example_project.demo", description=__doc__.split("\n\n")[0])
    site = parser.add_argument_group("demo site")
    site.add_argument("--solve-every", type=int, metavar="K",
                      help="the site asks for a new captcha every K pages; 0: once per session (default: 10; with --adapt: 1)")
    site.add_argument("--mode", choices=CAPTCHA_MODES, default="redirect", help="how the captcha page is served")
    site.add_argument("--status", type=int, default=200, help="HTTP status of the captcha page (default: %(default)s)")
    site.add_argument("--case-sensitive", action="store_true", help="check answers case-sensitively")
    site.add_argument("--image-mode", choices=IMAGE_MODES, default="png")
    site.add_argument("--categories", type=int, default=3)
    site.add_argument("--items-per-category", type=int, default=24)
    site.add_argument("--no-gate", dest="gate", action="store_false", help="no captchas at all (baseline)")
    site.add_argument("--style", choices=CAPTCHA_STYLES, help="how captchas are drawn (default: captcha; with --adapt: ribbon)")
    loop = parser.add_argument_group("adapt loop (--adapt)")
    loop.add_argument("--adapt", action="store_true", help="crawl, adapt on the recording, crawl again, --rounds times")
    loop.add_argument("--rounds", type=int, default=3, help="adapt steps between crawls (default: %(default)s)")
    loop.add_argument("--adapt-steps", type=int, default=200, help="training steps of each adapt (default: %(default)s)")
    loop.add_argument("--record-dir", type=Path, help="recording folder (default: a new temporary one); runs go beside it")
    loop.add_argument("--weights", type=Path, help="weights of the first crawl and the first adapt's start (default: the bundled "
                                                                  "default model, not the 'auto' route: the loop adapts one model)")
    loop.add_argument("--adapt-from", metavar="WEIGHTS",
                      help="weights the first adapt starts from instead (a file or a bundled model's name, e.g. generalist: "
                           "for a site the crawl's model reads almost nothing of)")
    loop.add_argument("--goal", type=float, default=0.95, help="first-try acceptance the last round must reach")
    crawl = parser.add_argument_group("crawl")
    crawl.add_argument("-s", "--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                       help="override a Scrapy setting, e.g. -s CONCURRENT_REQUESTS_PER_DOMAIN=1")
    crawl.add_argument("-v", "--verbose", action="store_true", help="the full Scrapy log instead of captcha lines and warnings")
    return parser.parse_args(argv)


def site_options(args: argparse.Namespace) -> SiteOptions:
    return SiteOptions(
        categories=args.categories, items_per_category=args.items_per_category, gate=args.gate,
        solve_every=args.solve_every if args.solve_every is not None else (1 if args.adapt else 10), captcha_status=args.status, captcha_mode=args.mode,
        case_sensitive=args.case_sensitive, image_mode=args.image_mode,
        style=args.style or ("ribbon" if args.adapt else "captcha"),
    )


def crawl_settings(site_url: str, overrides: list[str], verbose: bool = False) -> Settings:
    """The example project's settings, pointed at ``site_url``, with ``-s`` overrides."""
    settings = Settings()
    settings.setmodule(SETTINGS_MODULE, priority="project")
    settings.set("DEMO_SITE_URL", site_url, priority="cmdline")
    settings.set("LOG_LEVEL", "INFO" if verbose else "WARNING", priority="cmdline")
    for override in overrides:
        name, sep, value = override.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: -s expects NAME=VALUE, got {override!r}")
        settings.set(name.strip(), value, priority="cmdline")
    return settings


def show_captcha_lines() -> None:
    """Print scrapy-captcha's INFO lines (one per solve) while Scrapy itself logs warnings only."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s] %(levelname)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(lambda record: record.levelno < logging.WARNING)  # warnings reach Scrapy's own handler
    captcha_logger = logging.getLogger("scrapy_captcha")
    captcha_logger.setLevel(logging.INFO)
    captcha_logger.addHandler(handler)


def run_crawl(settings: Settings, verbose: bool) -> tuple[Crawler, list[Product]]:
    process = AsyncCrawlerProcess(settings)
    if not verbose:
        show_captcha_lines()
    # Offline is fine here: the cookie middleware's public-suffix list falls back to its snapshot.
    logging.getLogger("tldextract").setLevel(logging.ERROR)
    crawler = process.create_crawler(CatalogSpider)
    items: list[Product] = []

    def collect(item: Product, **kwargs: Any) -> None:
        items.append(item)

    crawler.signals.connect(collect, signal=signals.item_scraped)
    process.crawl(crawler)
    process.start()
    return crawler, items


def summarize(site: DemoSite, stats: dict[str, Any], items: list[Product], seconds: float) -> tuple[str, bool]:
    """The summary text, and whether the crawl got everything."""
    expected_pages = site.expected_pages()
    reached = site.served_pages & expected_pages
    complete = {item.sku for item in items if not item.missing_fields()}
    detected = stats.get("captcha/detected", 0)
    solved = stats.get("captcha/solved", 0)
    attempts = stats.get("captcha/attempts", 0)
    solve_time = stats.get("captcha/solve_time", 0.0)
    per_answer = f" ({1000 * solve_time / attempts:.0f} ms per answer)" if attempts else ""
    options = site.options
    gate = (f"captcha every {options.solve_every} pages" if options.solve_every else "captcha once per session") \
        if options.gate else "no captcha"
    lines = [
        "",
        "scrapy-captcha demo",
        f"  site        {site.url}  ({gate}, {options.captcha_mode} mode, status {options.captcha_status})",
        f"  pages       {len(reached)} of {len(expected_pages)} catalogue pages reached",
        f"  items       {len(complete)} of {site.expected_items()} complete",
        f"  captchas    {detected} met, {solved} solved, {stats.get('captcha/solved_first_attempt', 0)} first time, "
        f"{stats.get('captcha/incorrect', 0)} wrong answers retried, {stats.get('captcha/gave_up', 0)} given up",
        f"  site saw    {site.stats['answers']} answers, {site.stats['answers_correct']} right",
        f"  solve time  {solve_time:.2f} s in the model{per_answer}",
        f"  total time  {seconds:.1f} s",
    ]
    failed = stats.get("catalog/failed_requests", 0) + stats.get("catalog/incomplete_pages", 0)
    ok = reached == expected_pages and len(complete) == site.expected_items()
    if ok:
        lines.append("OK: every catalogue page and item was reached.")
    else:
        missing = sorted(expected_pages - reached)
        lines.append(f"FAILED: {len(missing)} pages and {site.expected_items() - len(complete)} items missing"
                     f" ({failed} failed requests or unexpected pages); first missing: {', '.join(missing[:5])}")
        if options.gate and not detected and site.stats["captcha_pages"]:
            lines.append("  The captcha middleware met no captcha: is it in DOWNLOADER_MIDDLEWARES, and did it start"
                         " (see the warnings above)?")
    return "\n".join(lines), ok


@dataclass
class Round:
    """One crawl of the adapt loop and the adapt that followed it."""

    number: int
    weights: str
    met: int
    first_try: int
    given_up: int
    crawl_seconds: float
    adapt_seconds: float | None = None
    held_out: str = ""
    crawl_cpu_seconds: float = 0.0  # CPU time of this process (all threads) during the step
    adapt_cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.first_try / self.met if self.met else 0.0

    def line(self) -> str:
        adapt = f", adapt {self.adapt_seconds:6.1f} s{self.held_out}" if self.adapt_seconds is not None else ""
        return (f"  round {self.number}  {self.weights:<16} {self.met:4d} captchas met, {self.first_try:4d} accepted on the first try "
                f"({100 * self.rate:5.1f}%), {self.given_up:3d} given up; crawl {self.crawl_seconds:5.1f} s{adapt}")


def adapt_loop(site: DemoSite, args: argparse.Namespace, folder: Path,
               before_adapt: Callable[[int, Path], None] | None = None) -> list[Round]:
    """Crawl with recording on, adapt on the folder, crawl again with the new weights; ``args.rounds`` times.

    ``before_adapt(round, folder)`` runs before each adapt (``benchmarks/adapt.py`` adds hand labels there).
    """
    from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
    from twisted.internet.defer import Deferred
    from twisted.internet.threads import deferToThread

    from trainer.adapt import AdaptConfig, run as adapt

    rounds: list[Round] = []
    # More attempts than usual: a session whose round gives up fails the requests waiting on it,
    # and round 1 reads only some captchas right.
    base = crawl_settings(site.url, ["CAPTCHA_MAX_ATTEMPTS=10", *args.settings, f"CAPTCHA_HARVEST_DIR={folder}"], args.verbose)
    if not args.verbose:
        base.set("LOG_LEVEL", "CRITICAL", priority="cmdline")  # failed requests show in the round's line
    process = AsyncCrawlerProcess(base)
    logging.getLogger("tldextract").setLevel(logging.ERROR)

    async def loop() -> None:
        weights: Path | None = args.weights
        start = "bundled" if weights is None else weights.parent.name or weights.name
        for number in range(1, args.rounds + 2):
            settings = base.copy()
            # the loop measures how far adapting takes one model: the default one unless told otherwise, not the route
            settings.set("CAPTCHA_WEIGHTS", str(weights) if weights is not None else "default", priority="cmdline")
            crawler = Crawler(CatalogSpider, settings)
            started, cpu = time.perf_counter(), time.process_time()
            pending = process.crawl(crawler)
            await (maybe_deferred_to_future(pending) if isinstance(pending, Deferred) else pending)
            stats = crawler.stats.get_stats()
            row = Round(number, start if number == 1 else f"round-{number - 1}", stats.get("captcha/detected", 0),
                        stats.get("captcha/solved_first_attempt", 0), stats.get("captcha/gave_up", 0), time.perf_counter() - started,
                        crawl_cpu_seconds=time.process_time() - cpu)
            if number <= args.rounds:
                run = folder.parent / f"{folder.name}-runs" / f"round-{number}"
                started, cpu = time.perf_counter(), time.process_time()
                if before_adapt is not None:
                    await maybe_deferred_to_future(deferToThread(before_adapt, number, folder))
                adapt_start = getattr(args, "adapt_from", None) if number == 1 else None
                adapt_start = adapt_start or (str(weights) if weights else "default")
                final = await maybe_deferred_to_future(deferToThread(adapt, AdaptConfig(
                    folder=str(folder), out=str(run), weights=adapt_start,
                    steps=args.adapt_steps, progress=False, **getattr(args, "adapt_options", {}))))
                row.adapt_seconds, row.adapt_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
                if final.get("after") and final.get("before"):
                    row.held_out = f" (held-out {final['before']['sequence_accuracy']:.2f} -> {final['after']['sequence_accuracy']:.2f})"
                weights = run / "weights.pt"
            rounds.append(row)
            print(row.line(), flush=True)

    def finish(result: Any) -> Any:
        from twisted.internet import reactor

        reactor.callLater(0, reactor.stop)
        return result

    failure: list[Any] = []
    deferred_from_coro(loop()).addErrback(failure.append).addBoth(finish)
    process.start(stop_after_crawl=False)
    if failure:
        failure[0].raiseException()
    return rounds


def main_adapt(args: argparse.Namespace, options: SiteOptions) -> int:
    import tempfile

    folder = args.record_dir or Path(tempfile.mkdtemp(prefix="scrapy-captcha-demo-")) / "recording"
    print(f"adapt loop on the {options.style!r} style: recording in {folder}, runs in {folder.parent / (folder.name + '-runs')}",
          flush=True)
    with DemoSite(options) as site:
        started = time.perf_counter()
        rounds = adapt_loop(site, args, folder)
    total = time.perf_counter() - started
    last = rounds[-1]
    print(f"first-try acceptance {' -> '.join(f'{100 * r.rate:.0f}%' for r in rounds)} in {total:.0f} s "
          f"({sum(r.adapt_seconds or 0 for r in rounds):.0f} s adapting)", flush=True)
    return 0 if last.rate >= args.goal else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        options = site_options(args)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.adapt:
        return main_adapt(args, options)
    with DemoSite(options) as site:
        settings = crawl_settings(site.url, args.settings, args.verbose)
        started = time.perf_counter()
        crawler, items = run_crawl(settings, args.verbose)
        seconds = time.perf_counter() - started
        text, ok = summarize(site, crawler.stats.get_stats(), items, seconds)
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
