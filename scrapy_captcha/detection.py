"""Finding the captcha form on a page: a pure function of the response, no Scrapy engine needed.

:func:`find_captcha` returns a :class:`CaptchaForm` (the ``<form>``, the captcha ``<img>``, its URL
and the name of the text field to fill) or ``None``.

Without explicit selectors the heuristics look for a ``<form>`` holding an ``<img>`` whose
``src``/``id``/``name``/``class``/``alt``/``title`` suggests a captcha, and a text field whose
name/id/placeholder suggests the answer (or the form's only text field). A captcha gate asks for
nothing else: forms with other empty fields to fill (a password, an e-mail, a comment) are left
to the spider, since the middleware cannot fill them; so are third-party widgets (reCAPTCHA,
hCaptcha, Turnstile...), which are not text images.

Explicit selectors win: a page is a captcha page when they match, whatever it looks like.
Selectors starting with ``/`` or ``(`` are XPath, others CSS. A field may be given by its
input name or by a selector.

Pages without captchas cost a few byte searches: the HTML is parsed only when the raw body
contains ``<form``, ``<img`` and a captcha-ish word.

Hostile pages: the work is linear in the page (each ``<img>`` is scored at most once) and capped
at :data:`MAX_FORMS` forms and :data:`MAX_IMAGES` images per page; beyond that, or when the page
nests deeper than the HTML parser goes (about 2,000 levels, where lxml stops reading), a warning
names the page and what was skipped. Parsing a big page takes a while: pages of
:data:`THREAD_PAGE_BYTES` or more are worth a thread (:func:`needs_thread`; the middleware does that).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from lxml import etree
from lxml.html import HTMLParser
from parsel import Selector, SelectorList
from scrapy.http import HtmlResponse, Response, TextResponse
from w3lib.url import parse_data_uri

__all__ = ["CaptchaForm", "MAX_FORMS", "MAX_IMAGES", "THREAD_PAGE_BYTES", "find_captcha", "needs_thread", "select"]

logger = logging.getLogger(__name__)

#: Forms examined per page; a page with more stops there (a warning names it).
MAX_FORMS = 1000
#: ``<img>`` elements scored per page; a page with more stops there (a warning names it).
MAX_IMAGES = 5000
#: Pages at least this big are parsed in a thread by the middleware, off the reactor.
THREAD_PAGE_BYTES = 64 * 1024

_WORDS = (
    r"captcha|kaptcha|capcha|securimage|yzm"
    r"|verif(?:y|ication)?[-_ ]?(?:code|image|img|pic)"
    r"|(?:check|valid(?:ate|ation)?|auth|security|secure|img|pic|confirm)[-_ ]?code"
    r"|\bv[-_]?code\b"
)
#: Words that mark an image or field as a captcha.
CAPTCHA_HINT = re.compile(_WORDS, re.I)
_CAPTCHA_HINT_BYTES = re.compile(_WORDS.encode(), re.I)
#: Widgets that are not text images: never ours to solve.
FOREIGN_WIDGET = re.compile(r"recaptcha|hcaptcha|turnstile|geetest|arkose|funcaptcha|friendlycaptcha", re.I)
#: Field names that suggest where an answer goes, even without a captcha word.
ANSWER_HINT = re.compile(r"answer|solution|code|verif|challenge|response|security|human", re.I)
#: Images near a captcha that are not the captcha.
NOT_THE_IMAGE = re.compile(r"refresh|reload|renew|another|audio|sound|speaker|icon|logo|spinner|loading|button|btn", re.I)

_FORM_TAG = re.compile(rb"<form[\s/>]", re.I)
_IMG_TAG = re.compile(rb"<img[\s/>]", re.I)
_TEXT_TYPES = {"", "text", "tel", "number"}
_FILLABLE_TYPES = _TEXT_TYPES | {"password", "email", "search", "url"}
_SMALL_ICON = 32  # px: an <img> this small is a button, not a captcha


@dataclass(frozen=True)
class CaptchaForm:
    """A captcha found on a page."""

    form: Selector
    """The ``<form>`` to submit."""
    image: Selector
    """The captcha ``<img>``."""
    image_url: str
    """Absolute URL of the image, a ``data:`` URI, or ``""`` when the ``<img>`` has no source."""
    field: str
    """Name of the text input the answer goes into."""

    @property
    def is_inline(self) -> bool:
        """True when the image is a ``data:`` URI (no download needed)."""
        return self.image_url[:5].lower() == "data:"

    def inline_image(self) -> bytes:
        """The bytes of a ``data:`` URI image; ``ValueError`` if the URI is malformed."""
        return parse_data_uri(self.image_url).data


def select(root: Selector | Response, selector: str) -> SelectorList:
    """Match ``selector`` under ``root``: XPath if it starts with ``/`` or ``(``, CSS otherwise."""
    selector = selector.strip()
    if selector.startswith(("/", "(")):
        return root.xpath(selector)
    return root.css(selector)


def find_captcha(
    response: Response,
    form_selector: str | None = None,
    image_selector: str | None = None,
    field: str | None = None,
    *,
    max_forms: int = MAX_FORMS,
    max_images: int = MAX_IMAGES,
) -> CaptchaForm | None:
    """The captcha form of ``response``, or ``None`` if the page has none.

    ``form_selector``, ``image_selector`` and ``field`` override the heuristics for their part.
    Blocking, and for big pages slow: see :data:`THREAD_PAGE_BYTES`.
    """
    if not isinstance(response, HtmlResponse):
        return None
    body = response.body
    if not _FORM_TAG.search(body) or not _IMG_TAG.search(body):
        return None
    if not (form_selector or image_selector or field) and not _CAPTCHA_HINT_BYTES.search(body):
        return None
    root, truncated = parse_page(response)
    page = _Page(response, root, max_images)
    try:
        found = _find(page, form_selector, image_selector, field, max_forms)
    except (ValueError, SyntaxError) as exc:  # a malformed selector given by the user
        raise ValueError(f"invalid captcha selector: {exc}") from exc
    except _TooMuchWork as exc:
        logger.warning("Stopped looking for a captcha on %s after %s; a captcha beyond them is missed", response.url, exc)
        return None
    if found is None and truncated:
        logger.warning("The HTML of %s nests deeper than the parser reads; a captcha inside the part it skipped is missed", response.url)
    return found


def needs_thread(response: Response) -> bool:
    """Is ``response`` an HTML page big enough that :func:`find_captcha` should run in a thread?"""
    return isinstance(response, HtmlResponse) and len(response.body) >= THREAD_PAGE_BYTES


def parse_page(response: TextResponse) -> tuple[Selector, bool]:
    """The parsed page, and whether the parser stopped early (nesting deeper than it reads)."""
    # Parsed here rather than through response.selector, as parsel hides the parser's error log.
    body = response.text.strip().replace("\x00", "").encode("utf-8") or b"<html/>"
    parser = HTMLParser(recover=True, encoding="utf-8", huge_tree=True)
    root = etree.fromstring(body, parser=parser, base_url=response.url)
    if root is None:
        root = etree.fromstring(b"<html/>", parser=parser)
    truncated = any(_is_depth_limit(error) for error in parser.error_log)
    return Selector(root=root, type="html"), truncated


def _is_depth_limit(error: etree._LogEntry) -> bool:
    return error.type_name == "ERR_RESOURCE_LIMIT" or "Excessive depth" in error.message or "XML_PARSE_HUGE" in error.message


class _TooMuchWork(Exception):
    """The page has more forms or images than one page is allowed to cost."""


class _Page:
    """The parsed page with its work budget: each image is scored once, and at most ``max_images`` of them."""

    def __init__(self, response: TextResponse, root: Selector, max_images: int):
        self.response = response
        self.root = root
        self.max_images = max_images
        self._scores: dict[object, int] = {}
        self._captcha_like: list[Selector] | None = None

    def score(self, image: Selector) -> int:
        key = image.root
        score = self._scores.get(key)
        if score is None:
            if len(self._scores) >= self.max_images:
                raise _TooMuchWork(f"{self.max_images} images (MAX_IMAGES)")
            score = self._scores[key] = _image_score(image)
        return score

    def captcha_like_images(self) -> list[Selector]:
        """The page's images that look like a captcha, wherever they are (computed once)."""
        if self._captcha_like is None:
            self._captcha_like = [image for image in self.root.xpath("//img") if self.score(image) > 0]
        return self._captcha_like


def _find(page: _Page, form_selector: str | None, image_selector: str | None, field: str | None, max_forms: int) -> CaptchaForm | None:
    root = page.root
    image = None
    if image_selector:
        image = _first_img(select(root, image_selector))
        if image is None:
            return None
    if form_selector:
        forms = [form for form in select(root, form_selector) if _tag(form) == "form"][:1]
    elif image is not None and image.xpath("ancestor::form"):
        forms = [image.xpath("ancestor::form[1]")[0]]
    else:
        forms = root.xpath("//form")
    heuristic = not (form_selector or image_selector)
    for examined, form in enumerate(forms):
        if examined == max_forms:
            raise _TooMuchWork(f"{max_forms} of its {len(forms)} forms (MAX_FORMS)")
        found = _match_form(page, form, image, field)
        if found is not None and not (heuristic and _asks_for_more(form, found.field)):
            return found
    return None


def _match_form(page: _Page, form: Selector, image: Selector | None, field: str | None) -> CaptchaForm | None:
    field_name = _explicit_field(form, field) if field else _guess_field(form)
    if field_name is None:
        return None
    if image is None:
        image = _guess_image(page, form, strong_field=bool(CAPTCHA_HINT.search(field_name)))
        if image is None:
            return None
    return CaptchaForm(form=form, image=image, image_url=_image_url(page.response, image), field=field_name)


def _tag(selector: Selector) -> str:
    tag = getattr(selector.root, "tag", "")
    return tag.lower() if isinstance(tag, str) else ""


def _first_img(matches: SelectorList) -> Selector | None:
    for match in matches:
        if _tag(match) == "img":
            return match
        inner = match.xpath("descendant::img[1]")
        if inner:
            return inner[0]
    return None


def _asks_for_more(form: Selector, field: str) -> bool:
    """Does the form have empty fields to fill besides the captcha answer?"""
    for element in form.xpath("descendant::input | descendant::textarea"):
        kind = element.attrib.get("type", "").strip().lower()
        if _tag(element) == "input" and kind not in _FILLABLE_TYPES:
            continue
        name = element.attrib.get("name")
        if not name or name == field or "disabled" in element.attrib or "readonly" in element.attrib:
            continue
        value = element.attrib.get("value", "") if _tag(element) == "input" else "".join(element.xpath("text()").getall())
        if kind == "password" or not value.strip():
            return True
    return False


def _attrs(selector: Selector, *names: str) -> str:
    return " ".join(selector.attrib.get(name, "") for name in names)


def _text_inputs(form: Selector) -> list[Selector]:
    inputs = []
    for element in form.xpath("descendant::input | descendant::textarea"):
        kind = element.attrib.get("type", "").strip().lower()
        if _tag(element) == "input" and kind not in _TEXT_TYPES:
            continue
        if "disabled" in element.attrib or "readonly" in element.attrib:
            continue
        if element.attrib.get("name"):
            inputs.append(element)
    return inputs


def _guess_field(form: Selector) -> str | None:
    inputs = _text_inputs(form)
    described = [(element, _attrs(element, "name", "id", "placeholder", "aria-label", "class")) for element in inputs]
    for hint in (CAPTCHA_HINT, ANSWER_HINT):
        for element, words in described:
            if hint.search(words):
                return element.attrib["name"]
    if len(inputs) == 1:
        return inputs[0].attrib["name"]
    return None


def _explicit_field(form: Selector, field: str) -> str | None:
    if form.xpath("descendant::input[@name = $name] | descendant::textarea[@name = $name]", name=field):
        return field
    try:
        matches = select(form, field)
    except (ValueError, SyntaxError):
        return None
    for match in matches:
        name = match.attrib.get("name")
        if name:
            return name
    return None


def _image_score(image: Selector) -> int:
    src = image.attrib.get("src", "") or image.attrib.get("data-src", "")
    described = _attrs(image, "id", "name", "class", "alt", "title")
    if FOREIGN_WIDGET.search(src) or FOREIGN_WIDGET.search(described):
        return -100
    src_hint = "" if src.startswith("data:") else src[:300]  # base64 can spell any word, "logo" included
    score = 0
    if CAPTCHA_HINT.search(src_hint):
        score += 3
    if CAPTCHA_HINT.search(_attrs(image, "id", "name")):
        score += 2
    if CAPTCHA_HINT.search(_attrs(image, "class", "alt", "title")):
        score += 1
    if score and NOT_THE_IMAGE.search(f"{src_hint} {described}"):
        score -= 3
    if score and _is_small(image):
        score -= 3
    return score


def _is_small(image: Selector) -> bool:
    for name in ("width", "height"):
        value = image.attrib.get(name, "").strip().removesuffix("px")
        if value.isdigit() and int(value) <= _SMALL_ICON:
            return True
    return False


def _best_image(page: _Page, images: SelectorList) -> Selector | None:
    scored = [(score, -position, image) for position, image in enumerate(images) if (score := page.score(image)) > 0]
    return max(scored, key=lambda entry: entry[:2])[2] if scored else None


def _guess_image(page: _Page, form: Selector, strong_field: bool) -> Selector | None:
    images = form.xpath("descendant::img")
    best = _best_image(page, images)
    if best is not None or not strong_field:
        return best
    # The field is clearly a captcha field: accept the form's only image, or the page's only
    # captcha-looking image when the form holds none (some sites put the image just above it).
    if len(images) == 1 and page.score(images[0]) > -100:
        return images[0]
    if not images:
        outside = page.captcha_like_images()
        if len(outside) == 1:
            return outside[0]
    return None


def _image_url(response: TextResponse, image: Selector) -> str:
    src = (image.attrib.get("src") or image.attrib.get("data-src") or "").strip()
    if not src or src.lower() == "about:blank":
        return ""
    if src[:5].lower() == "data:":
        return src
    try:
        return response.urljoin(src)
    except ValueError:  # a malformed URL: the middleware's URL policy refuses it, naming it
        return src
