"""Crawls that stop and resume, or share their work: real ``scrapy`` processes against the demo site.

- JOBDIR: ``scrapy crawl catalog`` interrupted with SIGINT during the first captcha round and
  twice later, then resumed from the same JOBDIR until it finishes.
- scrapy-redis: two worker processes sharing one queue and one dupefilter on a real
  ``redis-server`` (Debian's ``redis-server`` package; ``make system-packages`` installs it).

Each asserts that the site served every catalogue page exactly once, that every product reached the
feed exactly once, and that no captcha was solved twice: one accepted answer per cookie session
(one per process), each counted once in the crawl's ``captcha/solved``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from example_project.demo_site import DemoSite, Session, SiteOptions
from scrapy_captcha.site_knowledge import LEARN_FILE_NAME

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "example_project"
PROCESS_TIMEOUT = 90  # seconds one crawl process may take before the test fails


class CountingSite(DemoSite):
    """The demo site, counting how often it served each catalogue page."""

    def __init__(self, options: SiteOptions):
        super().__init__(options)
        self.page_counts: collections.Counter[str] = collections.Counter()

    def admit(self, session: Session, path: str) -> bool:
        admitted = super().admit(session, path)
        if admitted:
            with self._lock:
                self.page_counts[path] += 1
        return admitted

    def pages_served(self) -> int:
        with self._lock:
            return sum(self.page_counts.values())

    def count_of(self, key: str) -> int:
        with self._lock:
            return self.stats[key]


# 1 home + 3 categories x 3 listing pages + 72 products = 82 pages; one captcha per session.
CATALOGUE = {"categories": 3, "items_per_category": 24, "page_size": 8}


@pytest.fixture
def site() -> Iterator[CountingSite]:
    with CountingSite(SiteOptions(**CATALOGUE)) as running:
        yield running


@pytest.fixture
def inline_site() -> Iterator[CountingSite]:
    """The captcha page served in place: a redirect to it would be a request in the shared queue,
    which the other worker may send, with the first worker's session cookie in its headers."""
    with CountingSite(SiteOptions(**CATALOGUE, captcha_mode="inline")) as running:
        yield running


def crawl_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"  # the machine's cores are shared; the model is tiny
    return env


def start_crawl(argv: list[str], log: Path) -> subprocess.Popen:
    """A crawl process with its log (which ends with Scrapy's stats) written to ``log``."""
    return subprocess.Popen([sys.executable, "-m", "scrapy", *argv, "-s", "LOG_LEVEL=INFO", "-s", "TELNETCONSOLE_ENABLED=False"],
                            cwd=PROJECT, env=crawl_env(), stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def finish(process: subprocess.Popen, log: Path) -> dict[str, int]:
    """Wait for the crawl; its ``captcha/*`` stats and finish reason, from the stats Scrapy logs at the end."""
    try:
        process.wait(PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the crawl did not end in {PROCESS_TIMEOUT} s; its log:\n{log.read_text()[-3000:]}")
    text = log.read_text(errors="replace")
    assert process.returncode == 0, f"the crawl failed ({process.returncode}):\n{text[-3000:]}"
    assert "Dumping Scrapy stats" in text, f"no stats in the crawl's log:\n{text[-3000:]}"
    stats = {name: int(value) for name, value in re.findall(r"'(captcha/\w+|catalog/\w+|item_scraped_count)': (\d+)", text)}
    reason = re.search(r"'finish_reason': '(\w+)'", text)
    stats["finished"] = int(bool(reason and reason.group(1) == "finished"))
    tracebacks = text.count("Traceback (most recent call last)")
    assert tracebacks == 0, f"{tracebacks} tracebacks in the crawl's log:\n{text[-3000:]}"
    return stats


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> bool:
    """Poll until ``condition`` holds (True) or the process ends first (False)."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.005)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def read_feed(path: Path) -> collections.Counter[str]:
    """How often each product URL is in the feed."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return collections.Counter(json.loads(line)["url"] for line in lines if line.strip())


def assert_every_page_once(site: CountingSite, feed: collections.Counter[str]) -> None:
    expected = site.expected_pages()
    twice = {path: n for path, n in site.page_counts.items() if n > 1}
    assert not twice, f"pages served more than once: {twice}"
    assert set(site.page_counts) == expected, f"pages never served: {sorted(expected - set(site.page_counts))}"
    products = {f"{site.url}/item/{pid}" for pid in site.products}
    assert {url: n for url, n in feed.items() if n > 1} == {}, "products scraped more than once"
    assert set(feed) == products, f"products missing from the feed: {sorted(products - set(feed))[:5]}"


# -- JOBDIR ---------------------------------------------------------------------------------------


def test_jobdir_pause_and_resume_reaches_every_page_once(site, tmp_path):
    jobdir, feed = tmp_path / "job", tmp_path / "products.jsonl"
    argv = ["crawl", "catalog", "-a", f"base_url={site.url}", "-s", f"JOBDIR={jobdir}", "-o", f"{feed}:jsonlines"]
    # Where to interrupt: while the first captcha's image is being read, then twice mid-crawl.
    interrupts = [
        ("the first captcha image was served", lambda: site.count_of("images") >= 1),
        ("30 pages were served", lambda: site.pages_served() >= 30),
        ("60 pages were served", lambda: site.pages_served() >= 60),
    ]
    runs = []
    for run in range(len(interrupts) + 2):
        log = tmp_path / f"run-{run}.log"
        answers_before = site.count_of("answers_correct")
        process = start_crawl(argv, log)
        interrupted = False
        if run < len(interrupts):
            what, condition = interrupts[run]
            if wait_until(condition, process, what):
                process.send_signal(signal.SIGINT)  # once: Scrapy's graceful stop, which JOBDIR resumes from
                interrupted = True
        stats = finish(process, log)
        stats["accepted_answers"] = site.count_of("answers_correct") - answers_before
        runs.append(stats)
        assert stats["finished"] != interrupted, f"run {run}: interrupted={interrupted}, stats {stats}"
        if stats["finished"]:
            break
    else:
        pytest.fail(f"the crawl did not finish after {len(runs)} runs: {runs}")

    assert sum(not r["finished"] for r in runs) == len(interrupts), f"not every interrupt landed mid-crawl: {runs}"
    assert_every_page_once(site, read_feed(feed))
    for run, stats in enumerate(runs):
        # A resumed process has a new cookie session: one captcha for it, solved once.
        assert stats.get("captcha/solved", 0) == stats["accepted_answers"] <= 1, f"run {run}: {stats}"
        assert stats.get("captcha/detected", 0) == stats.get("captcha/solved", 0) + stats.get("captcha/gave_up", 0)
        assert stats.get("catalog/failed_requests", 0) == 0 and stats.get("catalog/incomplete_pages", 0) == 0, stats
    # what the site taught outlives the restarts: JOBDIR's learn file holds every answer it accepted, run after run
    learned = json.loads((jobdir / LEARN_FILE_NAME).read_text())
    answers = learned["sites"][urlsplit(site.url).netloc]["answers"]
    assert len(answers) == sum(stats["accepted_answers"] for stats in runs) >= 2, (answers, runs)


# -- scrapy-redis ---------------------------------------------------------------------------------

REDIS_SPIDER = '''
"""The catalog spider as a scrapy-redis worker: start URLs from Redis, requests shared through it."""

import asyncio
import json
import time

from scrapy import Request, signals
from scrapy_redis.spiders import RedisMixin

from catalog.spiders.catalog import CatalogSpider


class RedisCatalogSpider(RedisMixin, CatalogSpider):
    name = "catalog-redis"
    redis_batch_size = 1  # each worker takes one start URL at a time

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.setup_redis(crawler)
        # scrapy-redis counts idle time from the class's import; count it from the last response
        crawler.signals.connect(spider.busy, signal=signals.spider_opened)
        crawler.signals.connect(spider.busy, signal=signals.response_received)
        return spider

    def busy(self, **kwargs):
        self.spider_idle_start_time = int(time.time())

    async def start(self):
        # Say this worker is up, then wait for the test's start URLs, so that both workers take one.
        self.server.incr(f"{self.name}:ready")
        while True:
            requests = list(self.next_requests())
            if requests:
                break
            await asyncio.sleep(0.05)
        for request in requests:
            yield request

    def make_request_from_data(self, data):
        entry = json.loads(data)  # {"url": ..., "callback": ...}: filtered like any other request
        return Request(entry["url"], callback=getattr(self, entry["callback"]), errback=self.failed)
'''


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A fresh ``redis-server`` on a free loopback port, its files in a temporary folder."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run `make system-packages` (Debian package redis-server)")
    try:
        import redis
        import scrapy_redis  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"{exc.name} is not installed: pip install -e '.[test]' (it brings scrapy-redis)")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "redis"
    folder.mkdir()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                                "--appendonly", "no", "--protected-mode", "yes"],
                               stdout=(folder / "server.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start: {(folder / 'server.log').read_text()[-2000:]}")
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_scrapy_redis_two_workers_reach_every_page_once(inline_site, tmp_path, redis_url):
    import redis

    spider_file = tmp_path / "redis_catalog.py"
    spider_file.write_text(textwrap.dedent(REDIS_SPIDER), encoding="utf-8")
    settings = {
        "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "REDIS_URL": redis_url,
        "MAX_IDLE_TIME_BEFORE_CLOSE": "2",  # seconds a worker with nothing to do waits for more
        # One request at a time from the shared queue: a worker cannot take both start requests
        # (the one that met the captcha waits for its round without counting).
        "CONCURRENT_REQUESTS": "1",
    }
    workers = []
    for worker in range(2):
        argv = ["runspider", str(spider_file), "-a", f"base_url={inline_site.url}", "-o", f"{tmp_path / f'products-{worker}.jsonl'}:jsonlines"]
        for name, value in settings.items():
            argv += ["-s", f"{name}={value}"]
        log = tmp_path / f"worker-{worker}.log"
        workers.append((start_crawl(argv, log), log))
    client = redis.Redis.from_url(redis_url)
    for process, log in workers:
        wait_until(lambda: int(client.get("catalog-redis:ready") or 0) == 2, process, "both workers to start")
    # One start URL each (a worker takes one at a time), so that both take part from the start;
    # the requests go through the shared queue, so either worker may send either.
    client.rpush("catalog-redis:start_urls",
                 json.dumps({"url": f"{inline_site.url}/", "callback": "parse"}),
                 json.dumps({"url": f"{inline_site.url}/catalog/{inline_site.categories[1]}?page=1", "callback": "parse_listing"}))
    client.close()
    stats = [finish(process, log) for process, log in workers]

    feed = read_feed(tmp_path / "products-0.jsonl") + read_feed(tmp_path / "products-1.jsonl")
    assert_every_page_once(inline_site, feed)
    assert all(worker.get("item_scraped_count", 0) > 0 for worker in stats), f"a worker did nothing: {stats}"
    # One cookie session per worker: one accepted answer each, each counted once.
    assert [s.get("captcha/solved", 0) for s in stats] == [1, 1], stats
    assert inline_site.count_of("answers_correct") == 2
    for worker in stats:
        assert worker.get("captcha/detected", 0) == worker.get("captcha/solved", 0) + worker.get("captcha/gave_up", 0)
        assert worker.get("catalog/failed_requests", 0) == 0 and worker.get("catalog/incomplete_pages", 0) == 0, worker
