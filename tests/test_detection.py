"""Captcha detection on varied markup: what must be found, and what must not."""

from __future__ import annotations

import base64
import logging

import pytest
from scrapy.http import HtmlResponse, Response, TextResponse

from scrapy_captcha import detection
from scrapy_captcha.detection import find_captcha, select

URL = "https://shop.example/gate?next=/item/1"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def page(body: str, url: str = URL, status: int = 200) -> HtmlResponse:
    return HtmlResponse(url, status=status, body=f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")


DEMO_GATE = """
<h1>Please confirm you are human</h1>
<form method="post" action="/captcha/verify">
  <input type="hidden" name="csrf_token" value="abc">
  <input type="hidden" name="next" value="/item/1">
  <img id="captcha-image" src="/captcha/image?t=1f" alt="captcha" width="160" height="60">
  <input type="text" id="answer" name="answer" autocomplete="off" required>
  <button type="submit">Continue</button>
</form>"""


def test_demo_site_gate():
    found = find_captcha(page(DEMO_GATE))
    assert found is not None
    assert found.field == "answer"
    assert found.image_url == "https://shop.example/captcha/image?t=1f"
    assert found.form.attrib["action"] == "/captcha/verify"
    assert found.image.attrib["id"] == "captcha-image"
    assert not found.is_inline


@pytest.mark.parametrize(("markup", "field", "image_url"), [
    pytest.param(
        '<form action="/check"><img src="/captcha.php?rand=42"><input name="captcha_code"><input type="submit"></form>',
        "captcha_code", "https://shop.example/captcha.php?rand=42", id="src-word-and-field-word"),
    pytest.param(
        '<form action="/login/verify"><img id="verifyCodeImg" src="/getImage?id=9"><input type="text" name="vcode"></form>',
        "vcode", "https://shop.example/getImage?id=9", id="verify-code-id"),
    pytest.param(
        '<form><img src="/kaptcha.jpg"><input name="code" type="text"></form>',
        "code", "https://shop.example/kaptcha.jpg", id="kaptcha"),
    pytest.param(
        '<form method="post"><img src="/securimage/securimage_show.php" alt="CAPTCHA Image">'
        '<input type="text" name="captcha_code" size="10" maxlength="6"></form>',
        "captcha_code", "https://shop.example/securimage/securimage_show.php", id="securimage"),
    pytest.param(
        '<FORM METHOD=POST><IMG SRC="/c.png" CLASS="Captcha"><INPUT NAME="Solution"></FORM>',
        "Solution", "https://shop.example/c.png", id="upper-case-markup"),
    pytest.param(
        '<form><img src="/static/pic.png" width="120"><input name="captcha"></form>',
        "captcha", "https://shop.example/static/pic.png", id="only-image-of-a-captcha-field"),
    pytest.param(
        '<img class="captcha" src="/c/1.png"><form action="/go"><input name="captcha_answer"><button>Go</button></form>',
        "captcha_answer", "https://shop.example/c/1.png", id="image-just-above-the-form"),
    pytest.param(
        '<form><img src="/img/captcha-refresh.png" class="captcha-refresh" width="16" height="16">'
        '<img src="/captcha/render?x=1"><input name="answer"></form>',
        "answer", "https://shop.example/captcha/render?x=1", id="refresh-icon-is-not-the-captcha"),
    pytest.param(
        '<form><input type="hidden" name="token" value="t"><input type="text" name="next" value="/x">'
        '<img alt="security code" src="/sc"><input type="text" name="security_code"></form>',
        "security_code", "https://shop.example/sc", id="prefilled-text-field-is-fine"),
    pytest.param(
        '<form><input type="text" name="email" value="me@example.com"><img src="/captcha">'
        '<input type="text" name="captcha_text"></form>',
        "captcha_text", "https://shop.example/captcha", id="captcha-field-among-text-fields"),
])
def test_captcha_shapes(markup, field, image_url):
    found = find_captcha(page(markup))
    assert found is not None
    assert (found.field, found.image_url) == (field, image_url)


def test_base_href_is_respected():
    found = find_captcha(page('<head><base href="https://cdn.example/a/"></head>' + DEMO_GATE.replace('"/captcha/image?t=1f"', '"img/c.png"')))
    assert found is not None and found.image_url == "https://cdn.example/a/img/c.png"


def test_data_uri_image_is_read_from_the_page():
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    found = find_captcha(page(DEMO_GATE.replace("/captcha/image?t=1f", uri)))
    assert found is not None and found.is_inline
    assert found.inline_image() == PNG


def test_data_uri_whose_base64_spells_a_logo_word_is_still_detected():
    uri = "data:image/png;base64,iconLOGObtn" + base64.b64encode(PNG).decode()
    found = find_captcha(page(DEMO_GATE.replace("/captcha/image?t=1f", uri)))
    assert found is not None and found.is_inline


def test_malformed_data_uri_is_reported_when_read():
    found = find_captcha(page(DEMO_GATE.replace("/captcha/image?t=1f", "data:")))
    assert found is not None and found.is_inline
    with pytest.raises(ValueError):
        found.inline_image()


def test_image_without_source_is_still_a_captcha():
    found = find_captcha(page(DEMO_GATE.replace('src="/captcha/image?t=1f"', "")))
    assert found is not None and found.image_url == ""


def test_status_does_not_matter():
    assert find_captcha(page(DEMO_GATE, status=403)) is not None


@pytest.mark.parametrize("markup", [
    pytest.param(
        '<form action="/login" method="post"><img src="/logo.png" alt="Acme"><input name="username">'
        '<input type="password" name="password"><button>Log in</button></form>', id="login-form"),
    pytest.param(
        '<form action="/search"><img src="/static/logo.svg" alt="Shop logo"><input type="search" name="q">'
        '<input type="image" src="/go.png"></form>', id="search-form-with-logo"),
    pytest.param(
        '<p>We use a captcha to keep bots away. Security code policies apply.</p>'
        '<form action="/search"><img src="/logo.png"><input name="q"></form>', id="captcha-word-in-text-only"),
    pytest.param(
        '<form action="/login" method="post"><input name="user"><input type="password" name="pass">'
        '<img src="/captcha.jpg"><input name="captcha"></form>', id="login-form-with-captcha-needs-credentials"),
    pytest.param(
        '<form action="/comment" method="post"><input name="author"><input type="email" name="email">'
        '<textarea name="comment"></textarea><img src="/captcha.png"><input name="captcha"></form>',
        id="comment-form-with-captcha-needs-a-comment"),
    pytest.param(
        '<form action="/verify" method="post"><div class="g-recaptcha" data-sitekey="x"></div>'
        '<img src="https://www.gstatic.com/recaptcha/api2/logo_48.png" alt="reCAPTCHA">'
        '<input type="text" name="g-recaptcha-response"></form>', id="recaptcha-widget"),
    pytest.param(
        '<form><img src="/captcha/pick-the-cats.png"><input type="checkbox" name="cat1">'
        '<button>Verify</button></form>', id="captcha-image-but-nothing-to-type"),
    pytest.param('<img src="/captcha.png" alt="captcha"><input name="captcha">', id="no-form"),
    pytest.param(
        '<form><img src="/captcha.png"><input name="captcha" disabled></form>', id="only-field-disabled"),
    pytest.param(
        '<form><img src="/captcha.png"><input type="text"></form>', id="field-without-name"),
    pytest.param(
        '<form><img src="/a.png"><img src="/b.png"><input name="captcha"></form>', id="ambiguous-images"),
])
def test_not_a_captcha_page(markup):
    assert find_captcha(page(markup)) is None


def test_non_html_responses():
    assert find_captcha(Response(URL, body=PNG)) is None
    assert find_captcha(TextResponse(URL, body=b'{"captcha": "<form><img>"}', encoding="utf-8")) is None


def test_pages_without_forms_are_not_parsed(monkeypatch):
    def parse(response):
        raise AssertionError("the page was parsed")

    monkeypatch.setattr(detection, "parse_page", parse)
    big = "<p>" + "lorem ipsum " * 10000 + '<img src="/logo.png"></p>'
    assert find_captcha(page(big)) is None
    assert find_captcha(page(big.replace("<p>", '<form action="/search"><input name="q">', 1) + "</form>")) is None
    with pytest.raises(AssertionError, match="parsed"):  # the same check on a captcha page does parse
        find_captcha(page(DEMO_GATE))


EXPLICIT = """
<form id="search" action="/search"><input name="q"></form>
<div class="box"><img class="pic" src="/p/77.gif"></div>
<form id="gate" action="/pass" method="post">
  <input name="user" value=""><input class="reply" name="r1"><input name="r2"><button>OK</button>
</form>"""


def test_explicit_selectors_win_over_heuristics():
    assert find_captcha(page(EXPLICIT)) is None
    found = find_captcha(page(EXPLICIT), form_selector="#gate", image_selector="img.pic", field="r2")
    assert found is not None
    assert (found.form.attrib["id"], found.image_url, found.field) == ("gate", "https://shop.example/p/77.gif", "r2")


def test_explicit_field_by_selector_and_xpath_selectors():
    found = find_captcha(page(EXPLICIT), form_selector="//form[@id='gate']", image_selector="(//img)[1]", field="input.reply")
    assert found is not None and found.field == "r1"


def test_explicit_selectors_that_do_not_match_mean_no_captcha():
    assert find_captcha(page(DEMO_GATE), image_selector="img#nope") is None
    assert find_captcha(page(DEMO_GATE), form_selector="form.nope") is None
    assert find_captcha(page(DEMO_GATE), field="nope") is None


def test_explicit_image_selector_finds_its_form():
    found = find_captcha(page(DEMO_GATE.replace('id="captcha-image"', 'id="x"').replace('alt="captcha"', "")), image_selector="#x")
    assert found is not None and found.field == "answer"


def test_invalid_selector_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid captcha selector"):
        find_captcha(page(DEMO_GATE), form_selector="form[action=")


def test_select_dispatches_css_and_xpath():
    response = page(EXPLICIT)
    assert select(response, "form#gate").attrib["id"] == "gate"
    assert select(response, "//form[@id='search']").attrib["id"] == "search"
    assert select(response, "(//form)[2]").attrib["id"] == "gate"


# -- hostile pages ---------------------------------------------------------------------------------


def forms_and_images(n: int, captcha_at_end: bool = False) -> HtmlResponse:
    """``n`` forms with a captcha-named field and no image, and ``n`` captcha-like images outside them."""
    forms = "".join(f'<form action="/f{i}"><input name="captcha_{i}"></form>' for i in range(n))
    images = "".join(f'<img src="/captcha/{i}.png">' for i in range(n))
    return page(forms + images + (DEMO_GATE if captcha_at_end else ""))


def test_each_image_is_scored_once(monkeypatch):
    """Every form used to score every image of the page again: n forms x n images calls."""
    calls = 0
    score = detection._image_score

    def counting(image):
        nonlocal calls
        calls += 1
        return score(image)

    monkeypatch.setattr(detection, "_image_score", counting)
    for n in (20, 80):
        calls = 0
        assert find_captcha(forms_and_images(n, captcha_at_end=True)) is not None
        assert calls == n + 1, f"{calls} image scorings for {n} forms and {n + 1} images"


def test_work_per_page_is_capped(caplog):
    response = forms_and_images(30, captcha_at_end=True)
    assert find_captcha(response) is not None
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha.detection"):
        assert find_captcha(response, max_forms=10) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"Stopped looking for a captcha on {URL} after 10 of its 31 forms (MAX_FORMS); a captcha beyond them is missed"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha.detection"):
        assert find_captcha(response, max_images=10) is None
    assert "after 10 images (MAX_IMAGES)" in caplog.records[0].getMessage()
    assert URL in caplog.records[0].getMessage()


@pytest.mark.parametrize("depth", [100, 1900])
def test_captcha_nested_within_what_the_parser_reads_is_found(depth, caplog):
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha.detection"):
        assert find_captcha(page("<div>" * depth + DEMO_GATE + "</div>" * depth)) is not None
    assert not caplog.records


def test_captcha_nested_deeper_than_the_parser_reads_is_a_warning(caplog):
    depth = 3000
    with caplog.at_level(logging.WARNING, logger="scrapy_captcha.detection"):
        assert find_captcha(page("<div>" * depth + DEMO_GATE + "</div>" * depth)) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"The HTML of {URL} nests deeper than the parser reads; a captcha inside the part it skipped is missed"
    ]


def test_big_html_pages_are_searched_in_a_thread():
    small = page(DEMO_GATE)
    big = page(DEMO_GATE + "<p>" + "x" * detection.THREAD_PAGE_BYTES + "</p>")
    assert not detection.needs_thread(small)
    assert detection.needs_thread(big)
    assert not detection.needs_thread(Response(URL, body=b"\0" * detection.THREAD_PAGE_BYTES * 2))
    assert find_captcha(big) is not None
