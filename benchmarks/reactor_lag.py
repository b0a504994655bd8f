"""Reactor lag while a crawl meets a hostile page, for :mod:`benchmarks.hostile`.

The pages are served on a free loopback port; each crawl runs in its own process (``python -m
benchmarks.reactor_lag URL [--before REV]``), fetches the page once with the example project's
settings (the captcha middleware on) and a spider that does nothing with it, while a 10 ms
``LoopingCall`` records the longest stall of the reactor. With ``--before REV`` the middleware calls
that revision's ``find_captcha`` on the reactor thread, as it did then.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .hostile import LAG_TICK, HostilePlan, load_detection, page_for, run_worker


class _PageServer(ThreadingHTTPServer):
    """Serves the hostile pages at /<case> on a free loopback port."""

    daemon_threads = True

    def __init__(self, plan: HostilePlan, cases: tuple[str, ...]):
        self.pages = {case: page_for(case, plan).encode("utf-8") for case in cases}
        super().__init__(("127.0.0.1", 0), _PageHandler)


class _PageHandler(BaseHTTPRequestHandler):
    server: _PageServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.pages.get(self.path.lstrip("/"))
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


def measure_lag(plan: HostilePlan, before: str | None = None) -> list[dict[str, Any]]:
    server = _PageServer(plan, plan.lag_pages)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        results = []
        for case in plan.lag_pages:
            print(f"   reactor lag {case}{' (before)' if before else ''}", flush=True)
            result = run_worker("benchmarks.reactor_lag", [f"{url}/{case}"] + (["--before", before] if before else []), plan.timeout)
            result["case"] = case
            result["page_bytes"] = len(server.pages[case])
            results.append(result)
        return results
    finally:
        server.shutdown()
        server.server_close()


def lag_in_process(url: str, before: str | None) -> dict[str, Any]:
    """(In the worker) crawl ``url`` once with the middleware on; the reactor's longest stall meanwhile."""
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    if before:  # the old detection, called on the reactor thread as the middleware did then
        import scrapy_captcha.middleware as middleware

        middleware.find_captcha = load_detection(before).find_captcha
        middleware.needs_thread = lambda response: False

    gaps: list[float] = []

    class OnePage(scrapy.Spider):
        name = "hostile-lag"

        async def start(self):
            yield scrapy.Request(url, callback=self.parse, errback=self.failed)

        def parse(self, response):
            self.crawler.stats.set_value("hostile/status", response.status)

        def failed(self, failure):
            self.crawler.stats.set_value("hostile/failure", failure.getErrorMessage()[:200])

    last = [0.0]

    def tick() -> None:
        now = time.perf_counter()
        if last[0]:
            gaps.append(now - last[0])
        last[0] = now

    settings = Settings()
    settings.setmodule("example_project.catalog.settings", priority="project")
    settings.set("LOG_LEVEL", "ERROR", priority="cmdline")
    settings.set("ROBOTSTXT_OBEY", False, priority="cmdline")
    process = CrawlerProcess(settings)
    probes = []

    def opened(spider) -> None:
        from twisted.internet import task  # here, once the crawl has installed the reactor its settings name

        probes.append(task.LoopingCall(tick))
        probes[0].start(LAG_TICK)

    def closed(spider, reason) -> None:
        if probes and probes[0].running:
            probes[0].stop()

    crawler = process.create_crawler(OnePage)
    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    lags = [max(0.0, gap - LAG_TICK) for gap in gaps]
    return {"max_lag_seconds": max(lags, default=0.0), "ticks": len(gaps),
            "elapsed_seconds": stats.get("elapsed_time_seconds"), "status": stats.get("hostile/status"),
            "failure": stats.get("hostile/failure"), "captcha_detected": stats.get("captcha/detected", 0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reactor_lag", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--before", metavar="REV", help="the middleware calls find_captcha of detection.py at git revision REV")
    args = parser.parse_args(argv)
    print(json.dumps(lag_in_process(args.url, args.before), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
