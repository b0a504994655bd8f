"""The middleware's own requests: the captcha image, the answer, and the page fetched again.

They go through ``engine.download_async`` (every downloader middleware, not the scheduler), in the
session of the request that met the captcha (its ``cookiejar``, proxy, bind address, timeout,
User-Agent and Accept-Language), and in a download slot of their own next to the page's (its
name + ``"~captcha"``), so they never queue behind the crawl's requests nor wait for the slot that
request still holds. The image and the answer carry ``dont_retry`` (an answer is sent once; a
failed image costs the middleware an attempt and a fresh captcha) and the Referer that
:func:`scrapy_captcha.policy.referer_for` allows; the URL policy must have allowed their URL.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request

from .policy import referer_for
from .sessions import original_url

__all__ = ["POLICY_KEY", "SUBREQUEST_KEY", "captcha_request", "page_again", "set_referer"]

#: Marks the middleware's own sub-requests, which it must not intercept.
SUBREQUEST_KEY = "_captcha_subrequest"
#: On image and answer requests: (captcha page URL, kind, URL the spider asked for), to check
#: their redirect hops against the URL policy.
POLICY_KEY = "_captcha_policy"
#: Meta keys a sub-request shares with the request that met the captcha: they define the session.
SESSION_META = ("cookiejar", "proxy", "bindaddress", "download_timeout")
SESSION_HEADERS = ("User-Agent", "Accept-Language")
#: Sub-requests use the page's download slot name plus this suffix.
SLOT_SUFFIX = "~captcha"
#: Meta keys that belong to one download and are not carried over when re-fetching a page.
_PER_DOWNLOAD_META = re.compile(r"^(redirect_|retry_times$|download_latency$|download_slot$|_captcha)")


def _slot(request: Request) -> str:
    page_slot = request.meta.get("download_slot") or urlsplit(request.url).hostname or ""
    return f"{page_slot}{SLOT_SUFFIX}"


def set_referer(request: Request, page_url: str) -> None:
    """Give ``request`` the Referer the URL policy allows from ``page_url`` (the page, its origin, or none)."""
    referer = referer_for(request.url, page_url)
    if referer is None:
        request.headers.pop("Referer", None)
    else:
        request.headers["Referer"] = referer


def captcha_request(request: Request, url: str, page_url: str, kind: str, **kwargs: Any) -> Request:
    """The ``kind`` (image or answer) request to ``url`` for the captcha page at ``page_url``, in the
    session of ``request``; ``kwargs`` go to :class:`~scrapy.Request` (method, body)."""
    meta = {key: request.meta[key] for key in SESSION_META if key in request.meta}
    meta.update({
        SUBREQUEST_KEY: True,
        POLICY_KEY: (page_url, kind, original_url(request)),
        "allow_offsite": True,  # the URL policy decides instead, on every redirect hop too
        "dont_retry": True,
        "download_slot": _slot(request),
    })
    sub = Request(url, meta=meta, dont_filter=True, **kwargs)
    for name in SESSION_HEADERS:
        if name in request.headers:
            sub.headers[name] = request.headers[name]
    set_referer(sub, page_url)
    return sub


def page_again(request: Request) -> Request:
    """The page ``request`` asked for, once more, in its session (a GET of the first URL if it was redirected)."""
    meta = {key: value for key, value in request.meta.items() if not _PER_DOWNLOAD_META.match(key)}
    meta.update({SUBREQUEST_KEY: True, "download_slot": _slot(request)})
    if "redirect_urls" in request.meta:
        again = request.replace(url=original_url(request), method="GET", body=b"", meta=meta, dont_filter=True)
        again.headers.pop("Content-Type", None)
        return again
    return request.replace(meta=meta, dont_filter=True)
