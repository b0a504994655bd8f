"""A small captcha-gated shop for the demo, the tests and the benchmarks.

The site behaves like real captcha-gated sites: the first response sets a ``session`` cookie; a
session that has not solved a captcha (or whose ``solve_every`` pages ran out) asking for a
catalogue page is sent to a captcha page (a 302 to ``/captcha?next=...``, or the captcha page served
in place); the captcha page is a ``<form method="post" action="/captcha/verify">`` with a hidden
``csrf_token`` bound to the session, a hidden ``next``, an ``<img id="captcha-image">`` and a text
field ``answer``. Every fetch of the image draws a fresh ``captcha``-library image (160x60, the seed's
alphabet; drawn by :mod:`example_project.demo_captchas`) bound to the session; the last one fetched
is the one checked. The right answer verifies the session and redirects to ``next``; a wrong one
serves the captcha page again with ``<p class="error">`` and a new image.

Pages::

    /                          home, links to every category
    /catalog/<category>?page=N listing: product links (a.product) and <a rel="next">
    /item/<id>                 product: h1.name, span.price, dd.sku, div.description
    /captcha?next=<path>       captcha page
    /captcha/image?t=<random>  captcha image
    /captcha/verify            POST: csrf_token, next, answer

In process::

    with DemoSite(SiteOptions(solve_every=10)) as site:
        crawl(site.url)
        assert site.served_pages >= site.expected_pages()

Standalone: ``python -m example_project.demo_site --port 8080 [--solve-every K] [--status 403]
[--mode inline] ...`` serves until Ctrl-C (``--help`` lists every option).
"""

from __future__ import annotations

import argparse
import base64
import collections
import html
import secrets
import socket
import threading
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .catalogue import Product, build_catalogue, category_names
from .demo_captchas import CAPTCHA_STYLES, IMAGE_HEIGHT, IMAGE_WIDTH, CaptchaDrawer

CAPTCHA_MODES = ("redirect", "inline")
IMAGE_MODES = ("png", "broken", "html", "data-uri")
SESSION_COOKIE = "session"


@dataclass
class SiteOptions:
    """How the demo site behaves; every field is checked on creation."""

    categories: int = 3
    items_per_category: int = 24
    page_size: int = 8
    gate: bool = True  # False: no captcha at all
    solve_every: int = 0  # K > 0: a verified session must solve again after K pages; 0: once per session
    captcha_status: int = 200  # status of the captcha page: 200, or an error status such as 403
    captcha_mode: str = "redirect"  # "redirect" to /captcha?next=..., or "inline": captcha page in place
    case_sensitive: bool = False
    always_reject: bool = False
    image_mode: str = "png"  # "png" | "broken" | "html" | "data-uri"
    length: int = 4
    arithmetic: bool = False  # captchas are sums such as "7+4=?" (demo_captchas.draw_arithmetic); the answer is the result
    style: str = "captcha"  # "captcha" (the captcha package) or a style of example_project.demo_styles

    def __post_init__(self) -> None:
        for name in ("categories", "items_per_category", "page_size", "length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"SiteOptions.{name} must be a positive integer, not {getattr(self, name)!r}")
        if not isinstance(self.solve_every, int) or self.solve_every < 0:
            raise ValueError(f"SiteOptions.solve_every must be an integer >= 0, not {self.solve_every!r}")
        if self.captcha_status != 200 and not 400 <= self.captcha_status <= 599:
            raise ValueError(f"SiteOptions.captcha_status must be 200 or an error status (4xx/5xx), not {self.captcha_status!r}")
        if self.captcha_mode not in CAPTCHA_MODES:
            raise ValueError(f"SiteOptions.captcha_mode must be one of {CAPTCHA_MODES}, not {self.captcha_mode!r}")
        if self.image_mode not in IMAGE_MODES:
            raise ValueError(f"SiteOptions.image_mode must be one of {IMAGE_MODES}, not {self.image_mode!r}")
        if self.style not in CAPTCHA_STYLES:
            raise ValueError(f"SiteOptions.style must be one of {CAPTCHA_STYLES}, not {self.style!r}")

    @property
    def pages_per_category(self) -> int:
        return -(-self.items_per_category // self.page_size)


@dataclass
class Session:
    id: str
    csrf_token: str
    verified: bool = False
    pages_left: int = 0  # with solve_every > 0: pages this session may see before it must solve again
    answer: str | None = None  # text of the last image drawn for this session


def listing_path(category: str, page: int) -> str:
    return f"/catalog/{category}?page={page}"


def safe_next(value: str | None) -> str:
    """A local path to redirect to after the captcha (never another host, never the captcha itself)."""
    if not value or not value.startswith("/") or value.startswith("//") or value.startswith("/captcha"):
        return "/"
    return value


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)} | Demo Shop</title></head>\n<body>\n"
        '<header><a class="home" href="/">Demo Shop</a></header>\n'
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


class DemoSite:
    """The demo shop on a stdlib ``ThreadingHTTPServer`` in a background thread."""

    def __init__(self, options: SiteOptions | None = None, host: str = "127.0.0.1", port: int = 0):
        self.options = options or SiteOptions()
        self.host = host
        self.port = port
        self.stats: collections.Counter[str] = collections.Counter()
        self.served_pages: set[str] = set()  # catalogue paths served to sessions allowed to see them
        self.log_requests = False
        self.categories = category_names(self.options.categories)
        self.products = build_catalogue(self.options.categories, self.options.items_per_category)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._drawer = CaptchaDrawer()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> DemoSite:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("DemoSite is already started")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"demo-site-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> DemoSite:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("DemoSite is not started: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    # what a full crawl must see

    def expected_items(self) -> int:
        return self.options.categories * self.options.items_per_category

    def expected_pages(self) -> set[str]:
        """Every catalogue path a full crawl reaches: home, every listing page, every product."""
        pages = {"/"}
        pages.update(listing_path(c, n) for c in self.categories for n in range(1, self.options.pages_per_category + 1))
        pages.update(f"/item/{pid}" for pid in self.products)
        return pages

    # test hooks

    def current_answer(self, session_id: str) -> str | None:
        """The text of the last captcha image drawn for ``session_id`` (None if none is pending)."""
        with self._lock:
            session = self._sessions.get(session_id)
            return session.answer if session else None

    def is_verified(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.get(session_id)
            return bool(session and session.verified)

    # used by the request handler

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def session(self, session_id: str | None) -> tuple[Session, bool]:
        """The session for a cookie value, or a new one; the flag says whether it is new."""
        with self._lock:
            if session_id and session_id in self._sessions:
                return self._sessions[session_id], False
            session = Session(id=secrets.token_urlsafe(16), csrf_token=secrets.token_urlsafe(24))
            self._sessions[session.id] = session
            self.stats["sessions"] += 1
            return session, True

    def admit(self, session: Session, path: str) -> bool:
        """Whether ``session`` may see catalogue page ``path`` now; counts the page if so."""
        with self._lock:
            if self.options.gate:
                if not session.verified:
                    return False
                if self.options.solve_every:
                    session.pages_left -= 1
                    session.verified = session.pages_left > 0
            self.stats["pages"] += 1
            self.served_pages.add(path)
            return True

    def draw_captcha(self, session: Session) -> bytes:
        """A fresh PNG for ``session``; its text (arithmetic mode: its result) becomes the session's expected answer."""
        png, answer = self._drawer.draw(self.options.length, self.options.style, self.options.arithmetic)
        with self._lock:
            session.answer = answer
            self.stats["images"] += 1
        return png

    def check_answer(self, session: Session, answer: str) -> bool:
        """Check and consume the session's pending answer; verify the session if right."""
        with self._lock:
            expected, session.answer = session.answer, None
            self.stats["answers"] += 1
            if self.options.case_sensitive:
                correct = expected is not None and answer == expected
            else:
                correct = expected is not None and answer.lower() == expected.lower()
            correct = correct and not self.options.always_reject
            if correct:
                session.verified = True
                session.pages_left = self.options.solve_every
            self.stats["answers_correct" if correct else "answers_wrong"] += 1
            return correct

    # HTML

    def render(self, path: str, query: dict[str, list[str]]) -> tuple[str, str] | None:
        """``(canonical path, HTML)`` of a catalogue page, or None if there is no such page."""
        if path == "/":
            links = "\n".join(
                f'<li><a class="category" href="{listing_path(c, 1)}">{c.title()}</a></li>' for c in self.categories
            )
            return "/", page("Home", f'<h1>Demo Shop</h1>\n<nav class="categories"><ul>\n{links}\n</ul></nav>')
        if path.startswith("/catalog/"):
            category = path[len("/catalog/"):]
            try:
                number = int(query.get("page", ["1"])[0])
            except ValueError:
                return None
            if category not in self.categories or not 1 <= number <= self.options.pages_per_category:
                return None
            return listing_path(category, number), self.render_listing(category, number)
        if path.startswith("/item/"):
            try:
                product = self.products[int(path[len("/item/"):])]
            except (ValueError, KeyError):
                return None
            return f"/item/{product.id}", self.render_product(product)
        return None

    def render_listing(self, category: str, number: int) -> str:
        size = self.options.page_size
        products = [p for p in self.products.values() if p.category == category][(number - 1) * size:number * size]
        items = "\n".join(
            f'<li><a class="product" href="/item/{p.id}">{html.escape(p.name)}</a> '
            f'<span class="price">${p.price}</span></li>'
            for p in products
        )
        pagination = []
        if number > 1:
            pagination.append(f'<a rel="prev" href="{listing_path(category, number - 1)}">Previous</a>')
        pagination.append(f'<span class="current">Page {number} of {self.options.pages_per_category}</span>')
        if number < self.options.pages_per_category:
            pagination.append(f'<a rel="next" href="{listing_path(category, number + 1)}">Next</a>')
        return page(
            f"{category.title()}, page {number}",
            f'<h1>{category.title()}</h1>\n<ul class="products">\n{items}\n</ul>\n'
            f'<nav class="pagination">{" ".join(pagination)}</nav>',
        )

    def render_product(self, p: Product) -> str:
        return page(
            p.name,
            f'<nav class="breadcrumb"><a href="/">Home</a> / '
            f'<a href="{listing_path(p.category, 1)}">{p.category.title()}</a></nav>\n'
            f'<article class="product" data-id="{p.id}">\n'
            f'<h1 class="name">{html.escape(p.name)}</h1>\n'
            f'<p>Price: <span class="price">${p.price}</span></p>\n'
            f'<dl><dt>SKU</dt><dd class="sku">{p.sku}</dd>'
            f'<dt>Category</dt><dd class="category">{p.category}</dd></dl>\n'
            f'<div class="description"><p>{html.escape(p.description)}</p></div>\n</article>',
        )

    def render_captcha(self, session: Session, next_path: str, error: bool = False) -> str:
        """The captcha page; in data-uri mode this draws the image now."""
        self.count("captcha_pages")
        if self.options.image_mode == "data-uri":
            src = "data:image/png;base64," + base64.b64encode(self.draw_captcha(session)).decode("ascii")
        else:
            src = f"/captcha/image?t={secrets.token_hex(8)}"
        message = '<p class="error">Wrong answer, try again.</p>\n' if error else ""
        return page(
            "Security check",
            '<h1>Please confirm you are human</h1>\n'
            f"{message}"
            '<form method="post" action="/captcha/verify">\n'
            f'<input type="hidden" name="csrf_token" value="{session.csrf_token}">\n'
            f'<input type="hidden" name="next" value="{html.escape(next_path)}">\n'
            f'<img id="captcha-image" src="{src}" alt="captcha" width="{IMAGE_WIDTH}" height="{IMAGE_HEIGHT}">\n'
            '<label for="answer">Type the characters you see</label>\n'
            '<input type="text" id="answer" name="answer" autocomplete="off" required>\n'
            '<button type="submit">Continue</button>\n</form>',
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A crawl opens many connections at once: with socketserver's backlog of 5 the kernel drops
    # SYNs, and each dropped one costs a 1 s retransmit (a DownloadTimeoutError at DOWNLOAD_TIMEOUT=1).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], site: DemoSite):
        self.site = site
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on kept-alive connections."""
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real site; every response has a Content-Length
    server_version = "DemoShop/1.0"
    timeout = 60  # seconds an idle kept-alive connection keeps its thread
    server: _Server

    @property
    def site(self) -> DemoSite:
        return self.server.site

    def log_message(self, format: str, *args: Any) -> None:
        if self.site.log_requests:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        session, new = self._session()
        if url.path == "/captcha":
            next_path = safe_next(query.get("next", [None])[0])
            self._send(self.site.options.captcha_status, self.site.render_captcha(session, next_path), session, new)
        elif url.path == "/captcha/image":
            self._send_image(session, new)
        else:
            self._catalogue(url.path, url.query, query, session, new)

    def do_POST(self) -> None:
        session, new = self._session()
        if urlsplit(self.path).path != "/captcha/verify":
            self._send(405, page("Method not allowed", "<h1>Method not allowed</h1>"), session, new)
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if new or form.get("csrf_token", [""])[0] != session.csrf_token:
            self.site.count("csrf_rejected")
            self._send(400, page("Bad request", "<h1>Bad request: invalid CSRF token</h1>"), session, new)
            return
        next_path = safe_next(form.get("next", [None])[0])
        if self.site.check_answer(session, form.get("answer", [""])[0].strip()):
            self._send(302, "", session, new, location=next_path)
        else:
            html_ = self.site.render_captcha(session, next_path, error=True)
            self._send(self.site.options.captcha_status, html_, session, new)

    def _catalogue(self, path: str, raw_query: str, query: dict[str, list[str]], session: Session, new: bool) -> None:
        rendered = self.site.render(path, query)
        if rendered is None:
            self.site.count("not_found")
            self._send(404, page("Not found", "<h1>Not found</h1>"), session, new)
            return
        canonical, html_ = rendered
        if self.site.admit(session, canonical):
            self._send(200, html_, session, new)
            return
        requested = path + (f"?{raw_query}" if raw_query else "")
        if self.site.options.captcha_mode == "redirect":
            self._send(302, "", session, new, location="/captcha?next=" + quote(requested, safe="/"))
        else:
            self._send(self.site.options.captcha_status, self.site.render_captcha(session, requested), session, new)

    def _send_image(self, session: Session, new: bool) -> None:
        mode = self.site.options.image_mode
        if mode == "html":
            self.site.count("images")
            html_ = page("Image unavailable", "<p>The image is temporarily unavailable.</p>")
            self._send(200, html_, session, new)
            return
        png = self.site.draw_captcha(session)
        if mode == "broken":
            png = png[: len(png) // 2]
        self._send(200, png, session, new, content_type="image/png")

    def _session(self) -> tuple[Session, bool]:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(SESSION_COOKIE)
        except CookieError:
            morsel = None
        return self.site.session(morsel.value if morsel else None)

    def _send(self, status: int, body: str | bytes, session: Session, new_session: bool,
              content_type: str = "text/html; charset=utf-8", location: str | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if location:
            self.send_header("Location", location)
        if new_session:
            self.send_header("Set-Cookie", f"{SESSION_COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Lax")
        self.end_headers()
        self.wfile.write(data)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SiteOptions()
    parser = argparse.ArgumentParser(prog="python -m example_project.demo_site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--categories", type=int, default=defaults.categories)
    parser.add_argument("--items-per-category", type=int, default=defaults.items_per_category)
    parser.add_argument("--page-size", type=int, default=defaults.page_size)
    parser.add_argument("--no-gate", dest="gate", action="store_false", help="serve everything without captchas")
    parser.add_argument("--solve-every", type=int, default=defaults.solve_every, metavar="K",
                        help="a session must solve again after K pages (0: once per session)")
    parser.add_argument("--status", type=int, default=defaults.captcha_status, help="HTTP status of the captcha page")
    parser.add_argument("--mode", choices=CAPTCHA_MODES, default=defaults.captcha_mode,
                        help="redirect to /captcha, or serve the captcha page in place")
    parser.add_argument("--case-sensitive", action="store_true")
    parser.add_argument("--always-reject", action="store_true", help="reject every answer")
    parser.add_argument("--image-mode", choices=IMAGE_MODES, default=defaults.image_mode)
    parser.add_argument("--length", type=int, default=defaults.length, help="characters per captcha")
    parser.add_argument("--arithmetic", action="store_true", help="captchas are sums such as 7+4=? (the answer is the result)")
    parser.add_argument("--style", choices=CAPTCHA_STYLES, default=defaults.style, help="how captchas are drawn")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        options = SiteOptions(
            categories=args.categories, items_per_category=args.items_per_category, page_size=args.page_size,
            gate=args.gate, solve_every=args.solve_every, captcha_status=args.status, captcha_mode=args.mode,
            case_sensitive=args.case_sensitive, always_reject=args.always_reject, image_mode=args.image_mode,
            arithmetic=args.arithmetic, length=args.length, style=args.style,
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    site = DemoSite(options, host=args.host, port=args.port)
    site.log_requests = not args.quiet
    site.start()
    print(f"Demo site serving at {site.url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        site.stop()


if __name__ == "__main__":
    main()
