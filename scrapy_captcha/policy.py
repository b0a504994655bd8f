"""Where the middleware may send its own requests (the captcha image, the answer) and what they carry.

A captcha page is written by the site, so whatever it points at is untrusted. The middleware's
sub-requests go only:

- over ``http`` or ``https`` (a ``data:`` URI is allowed for an inline image: it is decoded, never
  fetched); ``file:``, ``ftp:``, ``javascript:``, ``mailto:``, ``data:`` form actions and malformed
  URLs are refused;
- to the captcha page's own origin (scheme, host and port) or its host upgraded to ``https`` on
  the default port, to a host the spider's
  ``allowed_domains`` allows (that domain and its subdomains, any port and scheme: the rules of
  Scrapy's offsite middleware), or to a host listed in ``CAPTCHA_ALLOWED_HOSTS``
  (``"cdn.example.com"``: that host and its subdomains on any port; ``"cdn.example.com:8443"``:
  that port only);
- never from an ``https`` page to plain ``http`` for the answer (the form would leak the answer
  and the session's hidden fields).

A ``Referer`` carries the page's full URL to its own origin only; other allowed hosts get the
page's origin, and a downgrade from ``https`` to ``http`` gets none (a browser's default
``strict-origin-when-cross-origin``).

The functions return the reason a URL is refused (``None``: allowed); the middleware turns it into
a :class:`~scrapy_captcha.errors.CaptchaPolicyError` and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

__all__ = [
    "HostRule",
    "check_subrequest_url",
    "data_uri_size",
    "describe_url",
    "parse_allowed_hosts",
    "referer_for",
]

#: Kinds of sub-request: the captcha image, and the answer (the form submission).
IMAGE, ANSWER = "image", "answer"
_WEB_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN_URL_CHARS = 200


@dataclass(frozen=True)
class HostRule:
    """One ``CAPTCHA_ALLOWED_HOSTS`` entry: a host (and its subdomains), on one port or any."""

    host: str
    port: int | None = None

    def allows(self, host: str, port: int) -> bool:
        return _in_domain(host, self.host) and (self.port is None or self.port == port)


def parse_allowed_hosts(entries: Iterable[str]) -> tuple[HostRule, ...]:
    """``CAPTCHA_ALLOWED_HOSTS`` entries (``"host"`` or ``"host:port"``) as rules; ``ValueError`` naming a bad one."""
    rules = []
    for entry in entries:
        text = str(entry).strip().lower()
        if not text or "/" in text or "@" in text:
            raise ValueError(f"{entry!r} is not a host name or host:port (no scheme, path or user)")
        try:
            parts = urlsplit(f"//{text}")
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a host name or host:port ({exc})") from None
        if not host:
            raise ValueError(f"{entry!r} has no host name")
        rules.append(HostRule(host.lstrip("."), port))
    return tuple(rules)


def describe_url(url: str) -> str:
    """``url`` shortened for a log or an error message (a ``data:`` URI shows its type and length only)."""
    if url[:5].lower() == "data:":
        return f"{url[:url.find(',')] if ',' in url[:100] else 'data:'}... ({len(url):,} characters)"
    return url if len(url) <= _SHOWN_URL_CHARS else f"{url[:_SHOWN_URL_CHARS]}... ({len(url):,} characters)"


def _in_domain(host: str, domain: str) -> bool:
    domain = domain.lower().lstrip(".")
    return bool(domain) and (host == domain or host.endswith("." + domain))


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; ``ValueError`` if it has none."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port  # ValueError for a port out of range or not a number
    if not host:
        raise ValueError("no host")
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def check_subrequest_url(
    url: str,
    page_url: str,
    kind: str,
    allowed_domains: Iterable[str] = (),
    allowed_hosts: Iterable[HostRule] = (),
) -> str | None:
    """Why the middleware must not send a ``kind`` sub-request (``IMAGE`` or ``ANSWER``) to ``url``
    from the captcha page at ``page_url``; ``None`` when it may. See the module docstring."""
    shown = describe_url(url)
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme == "data":
        return None if kind == IMAGE else f"the {kind} URL {shown} is a data: URI, which cannot receive anything"
    if scheme not in _WEB_SCHEMES:
        shown_scheme = f"{scheme}:" if scheme.isalnum() else "no scheme"
        return f"the {kind} URL {shown} uses {shown_scheme}; only http and https are allowed"
    try:
        target = _origin(url)
    except ValueError as exc:
        return f"the {kind} URL {shown} is malformed ({exc})"
    try:
        page = _origin(page_url)
    except ValueError:
        page = ("", "", 0)
    if kind == ANSWER and page[0] == "https" and target[0] == "http":
        return f"the answer URL {shown} is plain http, but the captcha page is https"
    if target == page or target == ("https", page[1], 443) and page[0] == "http":
        return None
    _, host, port = target
    if any(_in_domain(host, domain) for domain in allowed_domains if domain):
        return None
    if any(rule.allows(host, port) for rule in allowed_hosts):
        return None
    return (f"the {kind} URL {shown} is on another origin than the captcha page ({page[1]}:{page[2]}) and its host is "
            "neither in the spider's allowed_domains nor in CAPTCHA_ALLOWED_HOSTS")


def referer_for(url: str, page_url: str) -> str | None:
    """The ``Referer`` a request to ``url`` from the page at ``page_url`` may carry (``None``: none)."""
    try:
        target, page = _origin(url), _origin(page_url)
    except ValueError:
        return None
    if target == page:
        return page_url.split("#", 1)[0]
    if page[0] == "https" and target[0] == "http":
        return None
    scheme, host, port = page
    host = f"[{host}]" if ":" in host else host  # IPv6
    return f"{scheme}://{host}{'' if port == _DEFAULT_PORTS.get(scheme) else f':{port}'}/"


def data_uri_size(uri: str) -> int:
    """An upper bound of the bytes a ``data:`` URI decodes to, without decoding it."""
    comma = uri.find(",")
    payload = len(uri) - comma - 1 if comma >= 0 else len(uri)
    header = uri[:comma].lower() if comma >= 0 else ""
    return payload * 3 // 4 if header.endswith(";base64") else payload
