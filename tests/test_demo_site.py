"""The demo site over real HTTP on loopback, the catalog spider in a real crawl, and the demo command."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from http.cookiejar import CookieJar
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, build_opener, urlopen

import pytest
import pytest_twisted
from parsel import Selector
from PIL import Image
from scrapy import signals
from scrapy.crawler import CrawlerRunner
from scrapy.settings import Settings

from example_project.catalog.items import Product
from example_project.catalog.spiders.catalog import CatalogSpider
from example_project.demo_captchas import ALPHABET
from example_project.demo_site import DemoSite, SiteOptions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def page(self) -> Selector:
        return Selector(text=self.body.decode("utf-8"))

    @property
    def is_captcha(self) -> bool:
        return bool(self.page.css('form[action="/captcha/verify"] img#captcha-image'))


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # surface the 302 itself


class Client:
    """A browser-like client: one cookie jar (one session), redirects not followed."""

    def __init__(self, site: DemoSite):
        self.site = site
        self.jar = CookieJar()
        self._opener = build_opener(HTTPCookieProcessor(self.jar), _NoRedirect())

    def get(self, path: str) -> Reply:
        return self._open(self.site.url + path)

    def post(self, path: str, form: dict[str, str]) -> Reply:
        return self._open(self.site.url + path, urlencode(form).encode())

    def _open(self, url: str, data: bytes | None = None) -> Reply:
        try:
            with self._opener.open(url, data, timeout=10) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except HTTPError as error:
            with error:
                return Reply(error.code, dict(error.headers), error.read())

    @property
    def session_id(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "session")

    def captcha_form(self, reply: Reply) -> dict[str, str]:
        page = reply.page
        return {
            "csrf_token": page.css('input[name="csrf_token"]::attr(value)').get(),
            "next": page.css('input[name="next"]::attr(value)').get(),
            "image": page.css("img#captcha-image::attr(src)").get(),
        }

    def solve(self, reply: Reply, answer: str | None = None) -> Reply:
        """Fetch the captcha page's image and submit ``answer`` (default: the right one)."""
        form = self.captcha_form(reply)
        if not form["image"].startswith("data:"):
            assert self.get(form["image"]).status == 200
        if answer is None:
            answer = self.site.current_answer(self.session_id)
        return self.post("/captcha/verify", {"csrf_token": form["csrf_token"], "next": form["next"], "answer": answer})

    def verify(self, path: str = "/") -> Reply:
        """Pass the captcha in front of ``path``; returns the page at ``path``."""
        reply = self.get(path)
        if reply.status == 302:
            reply = self.get(reply.headers["Location"])
        assert reply.is_captcha
        solved = self.solve(reply)
        assert solved.status == 302, solved.body
        return self.get(solved.headers["Location"])


def test_alphabet_is_the_seed_models():
    from scrapy_captcha.codec import SEED_ALPHABET

    assert ALPHABET == SEED_ALPHABET


def test_options_are_checked():
    with pytest.raises(ValueError, match="captcha_mode"):
        SiteOptions(captcha_mode="popup")
    with pytest.raises(ValueError, match="image_mode"):
        SiteOptions(image_mode="gif")
    with pytest.raises(ValueError, match="solve_every"):
        SiteOptions(solve_every=-1)
    with pytest.raises(ValueError, match="page_size"):
        SiteOptions(page_size=0)


def test_new_session_is_redirected_to_the_captcha_page(demo_site):
    site = demo_site()
    client = Client(site)
    reply = client.get("/catalog/music?page=2")
    assert reply.status == 302
    assert reply.headers["Location"] == "/captcha?next=/catalog/music%3Fpage%3D2"
    assert "session=" in reply.headers["Set-Cookie"]

    captcha = client.get(reply.headers["Location"])
    assert captcha.status == 200
    form = client.captcha_form(captcha)
    assert form["next"] == "/catalog/music?page=2"
    assert len(form["csrf_token"]) > 20
    assert form["image"].startswith("/captcha/image?t=")
    page = captcha.page
    assert page.css('form[method="post"] input[type="text"][name="answer"]')
    assert page.css('form button[type="submit"]')
    assert page.css("img#captcha-image::attr(alt)").get() == "captcha"
    assert not page.css("p.error")
    assert site.stats["captcha_pages"] == 1 and site.stats["pages"] == 0


@pytest.mark.parametrize("mode", ["redirect", "inline"])
def test_captcha_page_with_status_403(demo_site, mode):
    client = Client(demo_site(captcha_status=403, captcha_mode=mode))
    reply = client.get("/item/5")
    if mode == "redirect":
        assert reply.status == 302
        reply = client.get(reply.headers["Location"])
    assert reply.status == 403
    assert reply.is_captcha
    assert client.captcha_form(reply)["next"] == "/item/5"
    assert client.verify("/item/5").page.css("h1.name::text").get()


def test_inline_captcha_is_served_in_place_and_leads_back(demo_site):
    client = Client(demo_site(captcha_mode="inline"))
    reply = client.get("/catalog/books?page=3")
    assert reply.status == 200 and reply.is_captcha
    solved = client.solve(reply)
    assert (solved.status, solved.headers["Location"]) == (302, "/catalog/books?page=3")


def test_image_is_a_160x60_png_and_each_fetch_draws_a_new_answer(demo_site):
    site = demo_site()
    client = Client(site)
    client.get("/")
    first = client.get("/captcha/image?t=1")
    assert first.status == 200 and first.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(first.body))
    image.load()
    assert (image.format, image.size) == ("PNG", (160, 60))
    answer = site.current_answer(client.session_id)
    assert len(answer) == 4 and set(answer) <= set(ALPHABET)
    answers = {answer}
    for t in range(2, 6):
        client.get(f"/captcha/image?t={t}")
        answers.add(site.current_answer(client.session_id))
    assert len(answers) > 1
    assert site.stats["images"] == 5


def test_right_answer_verifies_the_session_and_redirects_to_next(demo_site):
    site = demo_site()
    client = Client(site)
    captcha = client.get("/captcha?next=/item/7")
    solved = client.solve(captcha)
    assert (solved.status, solved.headers["Location"]) == (302, "/item/7")
    assert site.is_verified(client.session_id)
    product = client.get("/item/7")
    assert product.status == 200
    page = product.page
    assert page.css("h1.name::text").get() and page.css("dd.sku::text").get()
    assert page.css("span.price::text").get().startswith("$")
    assert page.css("div.description p::text").get()
    for path in ("/", "/catalog/books?page=1"):  # once per session by default
        assert client.get(path).status == 200
    assert site.stats["answers_correct"] == 1
    assert site.served_pages == {"/item/7", "/", "/catalog/books?page=1"}


def _captcha_with_letters(client: Client) -> tuple[Reply, str]:
    """A captcha page whose pending answer has a letter (so its case can be changed)."""
    captcha = client.get("/captcha?next=/")
    for t in range(50):
        client.get(f"/captcha/image?t={t}")
        answer = client.site.current_answer(client.session_id)
        if answer != answer.swapcase():
            return captcha, answer
    raise AssertionError("no captcha with a letter in 50 draws")


@pytest.mark.parametrize("case_sensitive", [False, True])
def test_case_of_the_answer(demo_site, case_sensitive):
    site = demo_site(case_sensitive=case_sensitive)
    client = Client(site)
    captcha, answer = _captcha_with_letters(client)
    form = client.captcha_form(captcha)
    reply = client.post("/captcha/verify", {"csrf_token": form["csrf_token"], "next": "/", "answer": answer.swapcase()})
    assert reply.status == (200 if case_sensitive else 302)
    assert site.is_verified(client.session_id) is not case_sensitive


def test_wrong_answer_shows_an_error_and_a_new_image(demo_site):
    site = demo_site(captcha_status=403)
    client = Client(site)
    captcha = client.get("/captcha?next=/item/2")
    wrong = client.solve(captcha, answer="----")
    assert wrong.status == 403 and wrong.is_captcha
    assert wrong.page.css("p.error::text").get() == "Wrong answer, try again."
    assert client.captcha_form(wrong)["image"] != client.captcha_form(captcha)["image"]
    assert client.captcha_form(wrong)["next"] == "/item/2"
    assert site.current_answer(client.session_id) is None  # an answer is checked once
    assert not site.is_verified(client.session_id)
    assert client.get("/item/2").status == 302

    solved = client.solve(wrong)
    assert (solved.status, solved.headers["Location"]) == (302, "/item/2")
    assert (site.stats["answers_wrong"], site.stats["answers_correct"]) == (1, 1)


def test_bad_csrf_token_is_rejected_with_400(demo_site):
    site = demo_site()
    client = Client(site)
    captcha = client.get("/captcha?next=/")
    client.get(client.captcha_form(captcha)["image"])
    answer = site.current_answer(client.session_id)
    assert client.post("/captcha/verify", {"csrf_token": "forged", "next": "/", "answer": answer}).status == 400
    # The token belongs to the session: another session cannot use it.
    token = client.captcha_form(captcha)["csrf_token"]
    assert Client(site).post("/captcha/verify", {"csrf_token": token, "next": "/", "answer": answer}).status == 400
    assert not site.is_verified(client.session_id)
    assert site.stats["csrf_rejected"] == 2 and site.stats["answers"] == 0


def test_next_never_leaves_the_site(demo_site):
    client = Client(demo_site())
    solved = client.solve(client.get("/captcha?next=//evil.example/x"))
    assert solved.headers["Location"] == "/"


def test_solve_every_k_pages_asks_again(demo_site):
    site = demo_site(solve_every=3)
    client = Client(site)
    assert client.verify("/item/1").status == 200  # page 1 of 3
    assert client.get("/item/2").status == 200
    assert client.get("/item/3").status == 200
    again = client.get("/item/4")
    assert (again.status, again.headers["Location"]) == (302, "/captcha?next=/item/4")
    assert client.verify("/item/4").status == 200
    assert site.stats["answers_correct"] == 2 and site.stats["pages"] == 4


def test_always_reject(demo_site):
    site = demo_site(always_reject=True)
    client = Client(site)
    reply = client.get("/captcha?next=/")
    for _ in range(3):
        reply = client.solve(reply)  # the right answer, rejected anyway
        assert reply.status == 200 and reply.page.css("p.error")
    assert not site.is_verified(client.session_id)
    assert site.stats["answers_wrong"] == 3 and site.stats["answers_correct"] == 0


def test_broken_image(demo_site):
    client = Client(demo_site(image_mode="broken"))
    client.get("/")
    reply = client.get("/captcha/image?t=1")
    assert reply.status == 200 and reply.headers["Content-Type"] == "image/png"
    assert reply.body.startswith(PNG_SIGNATURE)
    with pytest.raises(OSError):
        Image.open(io.BytesIO(reply.body)).load()


def test_html_at_the_image_url(demo_site):
    client = Client(demo_site(image_mode="html"))
    client.get("/")
    reply = client.get("/captcha/image?t=1")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    assert reply.body.lstrip().startswith(b"<!DOCTYPE html>")


def test_data_uri_image(demo_site):
    site = demo_site(image_mode="data-uri")
    client = Client(site)
    captcha = client.get("/captcha?next=/item/3")
    src = client.captcha_form(captcha)["image"]
    assert src.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert (image.format, image.size) == ("PNG", (160, 60))
    assert len(site.current_answer(client.session_id)) == 4
    solved = client.solve(captcha)  # no image request: the page itself drew the captcha
    assert (solved.status, solved.headers["Location"]) == (302, "/item/3")
    assert site.stats["images"] == 1


def test_without_gate_everything_is_served(demo_site):
    site = demo_site(gate=False, categories=2, items_per_category=5, page_size=2)
    client = Client(site)
    for path in sorted(site.expected_pages()):
        reply = client.get(path)
        assert reply.status == 200 and not reply.is_captcha, path
    assert site.served_pages == site.expected_pages()
    assert len(site.expected_pages()) == 1 + 2 * 3 + 10
    assert site.stats["captcha_pages"] == 0
    assert client.get("/item/11").status == 404
    assert client.get("/catalog/books?page=4").status == 404


def test_stop_closes_the_port():
    with DemoSite(SiteOptions(gate=False)) as site:
        url = site.url
        assert urlopen(url + "/", timeout=5).status == 200
    with pytest.raises(URLError):
        urlopen(url + "/", timeout=5)


def test_standalone_command_serves_until_stopped():
    command = [sys.executable, "-m", "example_project.demo_site", "--port", "0", "--quiet", "--no-gate"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("Demo site serving at http://127.0.0.1:"), line
        url = line.split()[4]
        assert b'class="category"' in urlopen(url + "/", timeout=5).read()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def example_settings(**overrides) -> Settings:
    settings = Settings()
    settings.setmodule("example_project.catalog.settings", priority="project")
    settings.setdict(overrides, priority="cmdline")
    return settings


@pytest_twisted.ensureDeferred
async def test_catalog_spider_reaches_every_page_and_item(demo_site):
    site = demo_site(gate=False)
    # The spider alone: without captchas the middleware has nothing to do.
    runner = CrawlerRunner(example_settings(DOWNLOADER_MIDDLEWARES={"scrapy_captcha.CaptchaMiddleware": None}))
    crawler = runner.create_crawler(CatalogSpider)
    items: list[Product] = []

    def collect(item, **kwargs):
        items.append(item)

    crawler.signals.connect(collect, signal=signals.item_scraped)
    await runner.crawl(crawler, base_url=site.url)

    assert site.served_pages == site.expected_pages()
    assert len(items) == site.expected_items()
    assert all(not item.missing_fields() for item in items)
    assert len({item.sku for item in items}) == site.expected_items()
    product = site.products[1]
    first = next(item for item in items if item.sku == product.sku)
    assert (first.name, first.price, first.description) == (product.name, product.price, product.description)
    assert first.url == f"{site.url}/item/1"
    stats = crawler.stats.get_stats()
    assert "catalog/failed_requests" not in stats and "catalog/incomplete_pages" not in stats


def test_spider_needs_an_address():
    runner = CrawlerRunner(example_settings(DEMO_SITE_URL=""))
    crawler = runner.create_crawler(CatalogSpider)
    with pytest.raises(ValueError, match="base_url"):
        CatalogSpider.from_crawler(crawler)


def test_example_settings_use_the_middlewares_own_order():
    from scrapy_captcha.middleware import PRIORITY

    settings = example_settings()
    assert settings.getdict("DOWNLOADER_MIDDLEWARES") == {"scrapy_captcha.CaptchaMiddleware": PRIORITY}


def test_demo_command():
    """`make demo` end to end: its own site, the example project, the middleware and the bundled model."""
    command = [sys.executable, "-m", "example_project.demo", "--categories", "1", "--solve-every", "10"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "28 of 28 catalogue pages reached" in result.stdout
    assert "24 of 24 complete" in result.stdout
    assert re.search(r"captchas    [1-9]\d* met", result.stdout), result.stdout
    assert "OK: every catalogue page and item was reached." in result.stdout


def test_demo_command_fails_when_pages_are_missing():
    """Without the middleware the crawl stops at the first captcha, and the demo says so."""
    command = [sys.executable, "-m", "example_project.demo", "--categories", "1", "-s", "DOWNLOADER_MIDDLEWARES={}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 of 28 catalogue pages reached" in result.stdout
    assert "FAILED" in result.stdout and "met no captcha" in result.stdout
