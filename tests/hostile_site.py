"""Small loopback servers for the hostile-page tests: a captcha site whose pages say what the test
wants, a recorder that logs every request reaching it, and a spider that keeps every outcome.

The site gates ``/page/<n>``: a session (cookie ``session``) that has not answered gets the captcha
page in place (HTTP 200), whose form and image point wherever the test says; ``POST /verify``
accepts any non-empty answer, verifies the session and redirects (302) to ``next``. Every request
is recorded with its method, path, headers and body, so a test can assert what was (not) sent.
"""

from __future__ import annotations

import html
import io
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import scrapy
from scrapy.crawler import CrawlerRunner

from scrapy_captcha.middleware import PRIORITY

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Hit:
    """One request a server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def captcha_png(text: str = "4821") -> bytes:
    """A real captcha image (the ``captcha`` package, which the bundled model reads well)."""
    from captcha.image import ImageCaptcha

    return ImageCaptcha(160, 60).generate(text).getvalue()


def png(width: int, height: int, colour: int = 255) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


class Server:
    """A threaded HTTP server on 127.0.0.1 (free port) answering from ``routes`` and recording every request.

    ``routes`` maps a path (without query) to a :data:`Reply` or a function of the :class:`Hit`
    returning one; unknown paths get ``default`` (404 unless changed).
    """

    def __init__(self, routes: dict[str, Reply | Callable[[Hit], Reply]] | None = None,
                 default: Reply | Callable[[Hit], Reply] | None = None):
        self.routes = dict(routes or {})
        self.default = default or (404, {"Content-Type": "text/plain"}, b"not found")
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hit = Hit(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                with server._lock:
                    server.hits.append(hit)
                route = server.routes.get(urlsplit(self.path).path, server.default)
                status, headers, body = route(hit) if callable(route) else route
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def hits_to(self, path: str) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if urlsplit(hit.path).path == path]


class CaptchaSite(Server):
    """The gated site described in the module docstring.

    ``action`` and ``image`` are the form action and image ``src`` of the captcha page (relative or
    absolute; defaults: ``/verify`` and ``/image``); ``head`` goes into the page's ``<head>``;
    ``image_reply`` answers ``/image`` (default: a fresh real captcha).
    """

    def __init__(self, action: str = "/verify", image: str = "/image", head: str = "",
                 image_reply: Reply | Callable[[Hit], Reply] | None = None, verify_reply: Reply | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.action, self.image, self.head = action, image, head
        self.verified: set[str] = set()
        self.routes.setdefault("/image", image_reply or (lambda hit: (200, {"Content-Type": "image/png"}, captcha_png())))
        self.routes.setdefault("/verify", verify_reply or self._verify)
        self.default = self._page  # type: ignore[assignment]

    def _session(self, hit: Hit) -> str | None:
        for part in hit.headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session":
                return value
        return None

    def _page(self, hit: Hit) -> Reply:
        path = urlsplit(hit.path).path
        if not path.startswith("/page/"):
            return 404, {"Content-Type": "text/plain"}, b"not found"
        session = self._session(hit)
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if session is None:
            session = secrets.token_hex(8)
            headers["Set-Cookie"] = f"session={session}; Path=/"
        if session in self.verified:
            body = f"<html><body><h1 class='content'>{html.escape(path)}</h1></body></html>"
            return 200, headers, body.encode()
        return 200, headers, self.captcha_page(path).encode()

    def captcha_page(self, next_path: str) -> str:
        return (
            f"<html><head>{self.head}<title>Are you human?</title></head><body>"
            f"<form method='post' action='{html.escape(self.action, quote=True)}'>"
            "<input type='hidden' name='csrf_token' value='secret-csrf-token'>"
            f"<input type='hidden' name='next' value='{html.escape(next_path, quote=True)}'>"
            f"<img id='captcha-image' src='{html.escape(self.image, quote=True)}' alt='captcha'>"
            "<input type='text' name='captcha'><button type='submit'>Go</button></form></body></html>"
        )

    def _verify(self, hit: Hit) -> Reply:
        fields = parse_qs(hit.body.decode("latin-1"))
        session = self._session(hit)
        if session and fields.get("captcha", [""])[0]:
            self.verified.add(session)
        return 302, {"Location": fields.get("next", ["/"])[0]}, b""


@dataclass
class Outcome:
    """What a crawl produced."""

    pages: list[scrapy.http.Response] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def captcha(self, key: str) -> Any:
        return self.stats.get(f"captcha/{key}", 0)

    def errors(self) -> list[BaseException]:
        return [failure.value for failure in self.failures]


class ListSpider(scrapy.Spider):
    """Requests ``urls`` (with ``meta``), keeping every response and failure."""

    name = "hostile"
    dont_filter = True

    def __init__(self, outcome: Outcome, urls: list[str], meta: list[dict] | None = None,
                 priorities: list[int] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.outcome, self.urls = outcome, urls
        self.metas, self.priorities = meta or [{} for _ in urls], priorities or [0 for _ in urls]

    async def start(self):
        for url, meta, priority in zip(self.urls, self.metas, self.priorities):
            yield scrapy.Request(url, meta=dict(meta), priority=priority, callback=self.parse, errback=self.failed,
                                 dont_filter=self.dont_filter)

    def parse(self, response):
        self.outcome.pages.append(response)

    def failed(self, failure):
        self.outcome.failures.append(failure)


BASE_SETTINGS = {
    "DOWNLOADER_MIDDLEWARES": {"scrapy_captcha.CaptchaMiddleware": PRIORITY},
    "ROBOTSTXT_OBEY": False,
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "INFO",
    "CAPTCHA_MAX_ATTEMPTS": 3,
}


async def crawl(urls: list[str], settings: dict | None = None, meta: list[dict] | None = None,
                priorities: list[int] | None = None, **spider_attrs: Any) -> Outcome:
    """Crawl ``urls`` once; ``spider_attrs`` become spider attributes (e.g. ``allowed_domains``)."""
    outcome = Outcome()
    runner = CrawlerRunner({**BASE_SETTINGS, **(settings or {})})
    spider_class = type("HostileSpider", (ListSpider,), spider_attrs) if spider_attrs else ListSpider
    crawler = runner.create_crawler(spider_class)
    await runner.crawl(crawler, outcome=outcome, urls=urls, meta=meta, priorities=priorities)
    outcome.stats = crawler.stats.get_stats()
    return outcome


def assert_counted(outcome: Outcome) -> None:
    """Every captcha round ended solved or given up, and every failure is a CaptchaError with its URL."""
    from scrapy_captcha import CaptchaError

    assert outcome.captcha("detected") == outcome.captcha("solved") + outcome.captcha("gave_up"), outcome.stats
    for error in outcome.errors():
        assert isinstance(error, CaptchaError), repr(error)
        assert error.url.startswith("http") and error.reason
