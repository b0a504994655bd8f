"""The URL policy's rules, as plain functions (the crawls in test_hostile_pages.py check the wiring)."""

from __future__ import annotations

import pytest

from scrapy_captcha.policy import (
    ANSWER,
    IMAGE,
    HostRule,
    check_subrequest_url,
    data_uri_size,
    describe_url,
    parse_allowed_hosts,
    referer_for,
)

PAGE = "https://shop.example.com/captcha?next=/item/1"
CDN = parse_allowed_hosts(["img.cdn.example.net", "static.example.org:8443"])


@pytest.mark.parametrize(("url", "kind", "domains", "allowed"), [
    ("https://shop.example.com/captcha/image", IMAGE, (), True),  # same origin
    ("https://shop.example.com:443/verify", ANSWER, (), True),  # default port spelled out
    ("https://SHOP.example.com/verify", ANSWER, (), True),  # host names are case-insensitive
    ("http://shop.example.com/verify", ANSWER, (), False),  # https page, plain http answer
    ("http://shop.example.com/image", IMAGE, (), False),  # another origin (scheme) and no rule for it
    ("https://shop.example.com:8443/verify", ANSWER, (), False),  # same host, another port
    ("https://plain.example.com/verify", ANSWER, (), True),  # http page: its host upgraded to https
    ("https://plain.example.com:8443/verify", ANSWER, (), False),  # ... on the default port only
    ("https://evil.example/verify", ANSWER, (), False),
    ("https://shop.example.com.evil.example/verify", ANSWER, ("example.com",), False),  # not a subdomain
    ("https://www.example.com/verify", ANSWER, ("example.com",), True),  # allowed_domains: subdomains
    ("https://example.com:8080/verify", ANSWER, ("example.com",), True),  # allowed_domains: any port
    ("https://img.cdn.example.net/c.png", IMAGE, (), True),  # CAPTCHA_ALLOWED_HOSTS
    ("https://a.img.cdn.example.net:444/c.png", IMAGE, (), True),  # its subdomains, any port
    ("https://cdn.example.net/c.png", IMAGE, (), False),  # not its parent
    ("https://static.example.org:8443/c.png", IMAGE, (), True),  # host:port
    ("https://static.example.org/c.png", IMAGE, (), False),  # host:port: that port only
    ("data:image/png;base64,iVBORw0KGgo=", IMAGE, (), True),  # inline image: decoded, never fetched
    ("data:text/html,<p>x</p>", ANSWER, (), False),
    ("file:///etc/passwd", IMAGE, (), False),
    ("ftp://shop.example.com/c.png", IMAGE, (), False),
    ("javascript:alert(1)", ANSWER, (), False),
    ("mailto:thief@example.com", ANSWER, (), False),
    ("//shop.example.com/verify", ANSWER, (), False),  # not absolute: no scheme
    ("https://[::1/verify", ANSWER, (), False),  # malformed
    ("https://shop.example.com:99999/verify", ANSWER, (), False),  # port out of range
    ("https:///verify", ANSWER, (), False),  # no host
])
def test_check_subrequest_url(url, kind, domains, allowed):
    page = "http://plain.example.com/captcha" if "plain.example.com" in url else PAGE
    reason = check_subrequest_url(url, page, kind, domains, CDN)
    assert (reason is None) == allowed, reason
    if reason is not None:
        assert kind in reason and (describe_url(url) in reason or "data:" in reason)


def test_refusals_say_which_rule():
    assert "only http and https" in check_subrequest_url("file:///etc/passwd", PAGE, IMAGE)
    assert "malformed" in check_subrequest_url("https://[::1/x", PAGE, IMAGE)
    assert "plain http" in check_subrequest_url("http://shop.example.com/verify", PAGE, ANSWER)
    assert "allowed_domains" in check_subrequest_url("https://evil.example/x", PAGE, ANSWER)


@pytest.mark.parametrize(("url", "referer"), [
    ("https://shop.example.com/image", PAGE),  # same origin: the page
    ("https://img.cdn.example.net/c.png", "https://shop.example.com/"),  # another host: the origin
    ("http://img.cdn.example.net/c.png", None),  # https -> http: none
    ("not a url", None),
])
def test_referer(url, referer):
    assert referer_for(url, PAGE) == referer


def test_referer_keeps_ports_and_ipv6_brackets_and_drops_fragments():
    assert referer_for("http://127.0.0.1:9/x", "http://127.0.0.1:8080/p#frag") == "http://127.0.0.1:8080/"
    assert referer_for("http://[::1]:8080/x", "http://[::1]:8080/p#frag") == "http://[::1]:8080/p"
    assert referer_for("http://localhost/x", "http://[::1]:8080/p") == "http://[::1]:8080/"


@pytest.mark.parametrize("entry", ["https://cdn.example.com", "cdn.example.com/images", "user@cdn.example.com", "", "cdn:port"])
def test_bad_allowed_hosts_entries_are_named(entry):
    with pytest.raises(ValueError, match="is not a host name|has no host"):
        parse_allowed_hosts([entry])


def test_allowed_hosts_entries():
    assert parse_allowed_hosts([" CDN.Example.com ", "img.example.org:8443"]) == (
        HostRule("cdn.example.com"), HostRule("img.example.org", 8443))


def test_data_uri_size_is_an_upper_bound_without_decoding():
    import base64

    payload = bytes(range(256)) * 40
    uri = "data:image/png;base64," + base64.b64encode(payload).decode()
    assert len(payload) <= data_uri_size(uri) <= len(payload) + 2
    assert data_uri_size("data:,hello") == 5


def test_describe_url_never_shows_a_data_uri_payload():
    uri = "data:image/png;base64," + "QUJD" * 10_000
    shown = describe_url(uri)
    assert shown.startswith("data:image/png;base64...") and "QUJD" not in shown and "40,022 characters" in shown
    assert describe_url("https://x.example/" + "a" * 500).endswith("(518 characters)")
