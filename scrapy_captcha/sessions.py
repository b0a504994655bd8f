"""Solving sessions: one captcha round at a time per (site, cookiejar), and what waiting costs.

A request that waits for its session's round (held before it is sent, or holding a captcha page
while another request solves) must not count against ``CONCURRENT_REQUESTS``: Scrapy counts a
request in ``Downloader.active`` from ``fetch()`` until its downloader middlewares return, waiting
included, so one stuck session would otherwise fill every slot and starve the other sessions.
:func:`not_counted` takes a waiting request out of that count and puts it back before the
downloader sees it again. The request that runs a round leaves its place to each of the round's
own downloads (image, answer, page again) while it runs, so a round takes one place, not two.
Nothing else is hidden: the request stays in the engine's in-progress set, so the engine still
waits for it before closing (JOBDIR loses nothing). Scrapy's idle check reads Downloader.active
only, so while a session is :attr:`Session.busy` the middleware keeps the spider open
(``spider_idle`` -> ``DontCloseSpider``). Up to
:data:`MAX_UNCOUNTED_WAITING` requests of one session wait uncounted; more wait counted, as any
request would, so that a crawl of few sessions does not pull its whole queue (a JOBDIR's, a shared
scrapy-redis queue) into memory while a round runs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import DeferredLock

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

    from .errors import CaptchaError

__all__ = ["MAX_UNCOUNTED_WAITING", "Session", "not_counted", "original_url", "session_key"]

#: Requests of one session that may wait for its round without counting against CONCURRENT_REQUESTS.
MAX_UNCOUNTED_WAITING = 64


class Session:
    """Solving state of one (site, cookiejar): one round at a time, and how the last one ended."""

    __slots__ = ("last_failure", "lock", "rounds", "uncounted")

    def __init__(self) -> None:
        self.lock = DeferredLock()
        self.rounds = 0  # rounds finished (passed or not)
        self.last_failure: CaptchaError | None = None  # None: the last round passed (or none ran)
        self.uncounted = 0  # its requests waiting outside CONCURRENT_REQUESTS now

    @property
    def busy(self) -> bool:
        """A round runs, or requests wait for one: the spider must not be closed."""
        return self.lock.locked or self.uncounted > 0

    async def round_end(self) -> None:
        """Wait until the round in progress (if any) has ended."""
        await maybe_deferred_to_future(self.lock.acquire())
        self.lock.release()

    def ended(self, failure: CaptchaError | None) -> None:
        """Record the outcome of the round that just ended."""
        self.rounds += 1
        self.last_failure = failure


def original_url(request: Request) -> str:
    """The URL the spider asked for, before any redirect."""
    return request.meta.get("redirect_urls", [request.url])[0]


def session_key(request: Request) -> tuple[str, Any]:
    """The site and cookiejar that a captcha answer is valid for."""
    return urlsplit(original_url(request)).netloc, request.meta.get("cookiejar")


@contextlib.contextmanager
def not_counted(crawler: Crawler, request: Request, waiting_in: Session | None = None) -> Iterator[None]:
    """While inside, ``request`` does not count against ``CONCURRENT_REQUESTS`` (see the module
    docstring); with ``waiting_in``, its session, only while that session has fewer than
    :data:`MAX_UNCOUNTED_WAITING` such requests, and the session is :attr:`Session.busy` meanwhile."""
    engine = crawler.engine
    active = getattr(getattr(engine, "downloader", None), "active", None)
    if not isinstance(active, set) or request not in active:
        yield
        return
    if waiting_in is not None and waiting_in.uncounted >= MAX_UNCOUNTED_WAITING:
        yield
        return
    active.discard(request)
    if waiting_in is not None:
        waiting_in.uncounted += 1
    if engine is not None and getattr(engine, "_slot", None) is not None:
        engine._slot.nextcall.schedule()  # a slot is free: let the engine send the next request now
    try:
        yield
    finally:
        active.add(request)
        if waiting_in is not None:
            waiting_in.uncounted -= 1
