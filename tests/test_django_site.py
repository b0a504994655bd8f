"""A real third-party site: the Django shop of ``example_project/django_site`` (django-simple-captcha
0.7.0 draws, stores and checks its captchas), crawled with scrapy-captcha on settings alone.

The site runs in the Django venv (``make django-venv``, which ``make test`` builds); without it
these tests fail, naming the command.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import re
import urllib.parse
import urllib.request

import pytest
import pytest_twisted

from example_project import django_site
from example_project.django_site import DjangoSite
from test_middleware import crawl

# What a user of this site would set: its captchas are capitals, checked in any case. The
# generalist reads about a third of them right, so 30 attempts make a give-up a 1-in-600,000 event.
SETTINGS = {"CAPTCHA_WEIGHTS": "generalist", "CAPTCHA_ANSWER_CASE": "upper", "CAPTCHA_MAX_ATTEMPTS": 30}


@pytest.fixture
def site():
    with DjangoSite(categories=1, items_per_category=8, solve_every=4) as started:
        yield started


def test_missing_venv_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.setattr(django_site, "VENV", tmp_path / "no-such-venv")
    with pytest.raises(FileNotFoundError, match=r"no-such-venv/bin/python is missing: make the Django venv first \(make django-venv"):
        DjangoSite().start()


def test_the_site_checks_answers_the_way_the_package_does(site):
    """A wrong answer shows the form again with a fresh key; the right one in lower case passes."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def captcha_form(response) -> tuple[str, dict[str, str]]:
        page = response.read().decode()
        assert re.search(r'<img src="/captcha/image/\w+/" alt="captcha" class="captcha"', page), page
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
        return page, fields

    response = opener.open(site.url + "/item/3")
    assert urllib.parse.urlsplit(response.url).path == "/verify/"
    _, fields = captcha_form(response)
    image = opener.open(f"{site.url}/captcha/image/{fields['captcha_0']}/").read()
    text = site.truth()[hashlib.sha1(image).hexdigest()]
    assert re.fullmatch(r"[A-Z]{4}", text)

    wrong = opener.open(site.url + "/verify/", urllib.parse.urlencode({**fields, "captcha_1": "0000"}).encode())
    page, fresh = captcha_form(wrong)
    assert "Invalid CAPTCHA" in page and fresh["captcha_0"] != fields["captcha_0"]

    opener.open(f"{site.url}/captcha/image/{fresh['captcha_0']}/").read()
    text = next(e["text"] for e in site.events() if e["event"] == "image" and e["key"] == fresh["captcha_0"])
    passed = opener.open(site.url + "/verify/", urllib.parse.urlencode({**fresh, "captcha_1": text.lower()}).encode())
    assert urllib.parse.urlsplit(passed.url).path == "/item/3"
    assert '<h1 class="name">' in passed.read().decode()
    assert site.answers() == {"wrong": 1, "right": 1}


@pytest_twisted.ensureDeferred
async def test_a_crawl_gets_through_the_django_captchas(site):
    outcome = await crawl(site, SETTINGS)

    assert not outcome.failures, [str(error) for error in outcome.errors()]
    # Every product's page reached the spider: the site serves them only to a session that passed.
    assert sorted(item["sku"] for item in outcome.items) == [f"BOO-{n:05d}" for n in range(1, 9)]
    assert all(all(item.values()) for item in outcome.items)
    assert not any(page.css("img.captcha") for page in outcome.pages)
    # 10 pages, 4 per passed captcha: at least 3 captchas; the stats agree with the site's own count.
    answers = site.answers()
    assert outcome.captcha("detected") == outcome.captcha("solved") == answers["right"] >= 3
    assert outcome.captcha("incorrect") == answers["wrong"]
    assert outcome.captcha("attempts") == answers["right"] + answers["wrong"]  # answers submitted
    assert outcome.captcha("gave_up") == outcome.captcha("form_refused") == outcome.captcha("image_errors") == 0
    if answers["wrong"]:  # a wrong answer was followed by a fresh captcha, answered until right
        assert outcome.captcha("solved_first_attempt") < outcome.captcha("solved")
