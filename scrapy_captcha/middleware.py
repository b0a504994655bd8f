"""
A downloader middleware that gets requests past text-image captchas with a local model.

When a response is a captcha page (see :mod:`scrapy_captcha.detection`), the middleware fetches
the image through Scrapy, reads it with the model, submits the form in the same session, retries
with the next captcha when the site rejects the answer, and returns the page the spider asked
for. Requests that cannot get past the captcha fail into their errback with a
:class:`~scrapy_captcha.errors.CaptchaError` subclass.

You can change its behaviour with these settings:

CAPTCHA_ENABLED - False to turn the middleware off (default True)
CAPTCHA_WEIGHTS - path of a weights file (default: the bundled model)
CAPTCHA_DEVICE - device for the model: "cpu" (default), "cuda", "cuda:1", "auto"
CAPTCHA_BACKEND - "auto" (default: onnxruntime for the bundled model and .onnx files on the CPU,
    torch for .pt files and GPUs), "onnx" or "torch" (needs scrapy-captcha[torch])
CAPTCHA_MAX_ATTEMPTS - captcha images read per captcha page before giving up (default 5)
CAPTCHA_MIN_CONFIDENCE - below this confidence an answer is not submitted; a fresh captcha is
    fetched instead (default 0.0: always submit)
CAPTCHA_ANSWER_CASE - "as-is" (default), "lower" or "upper": the case the site expects
CAPTCHA_ALPHABET - characters the site's captchas can contain; the model only answers with these
    (default: no restriction)
CAPTCHA_FORM_SELECTOR, CAPTCHA_IMAGE_SELECTOR - CSS or XPath (starting with "/" or "(") of the
    captcha form and image, instead of the heuristics
CAPTCHA_FIELD - name (or selector) of the input that takes the answer
CAPTCHA_HARVEST_DIR - record every captcha image read here, with its answer and the site's verdict;
    accepted ones as {index}-{answer}.png (see scrapy_captcha.recording)
CAPTCHA_HARVEST_MAX_MB - stop recording once that folder holds this many megabytes (default: no cap)
CAPTCHA_PASS_FAILED - True to give the captcha page to the callback, with
    meta["captcha_failed"] set to the reason, instead of failing the request (default False)

Request.meta keys: "captcha_skip" (True: leave this request alone), "captcha_form_selector",
"captcha_image_selector", "captcha_field" (per-request selectors), "captcha_image" (True: the
response is a captcha image; its answer and confidence go to meta["captcha_answer"] and
meta["captcha_confidence"]).

Stats: captcha/detected, captcha/attempts, captcha/solved, captcha/solved_first_attempt,
captcha/incorrect, captcha/form_refused (submissions the site answered with an HTTP error and no
new captcha, e.g. an expired CSRF token), captcha/low_confidence, captcha/image_errors,
captcha/gave_up, captcha/solve_time (seconds in the model), captcha/waited.

Settings are read and checked once, by :func:`scrapy_captcha.settings.read_settings`.

Order: PRIORITY (560) puts the middleware after HttpCompressionMiddleware (590), RedirectMiddleware
(600), MetaRefreshMiddleware (580) and CookiesMiddleware (700) on the response path, so it sees
decompressed pages at the end of redirect chains with the session cookies stored; and before
RetryMiddleware (550), so a captcha served with 429 or 503 is solved rather than retried blindly.
Its own sub-requests (image, answer, page again) go through ``engine.download_async`` and therefore
through every downloader middleware (cookies, proxies, redirects, retries) but not through the
scheduler, carry the ``cookiejar`` of the request that met the captcha, and use a download slot
of their own (the page's slot name + "~captcha"), so they never queue behind the crawl's requests
nor wait for the slot that request still holds (CONCURRENT_REQUESTS_PER_DOMAIN = 1 works).

Sessions: one solving round at a time per (site, cookiejar). Requests of that session that meet
the captcha meanwhile wait for the round, then fetch their page again without solving
(captcha/waited); requests about to be sent while a round runs are held until it ends.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable
from urllib.parse import urlsplit

from form2request import form2request
from scrapy import Request
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import DeferredLock
from w3lib.url import canonicalize_url

from .answers import AnswerRules, answer_rules
from .codec import Prediction
from .detection import CaptchaForm, find_captcha, needs_thread
from .errors import CaptchaError, CaptchaFormError, CaptchaImageError, CaptchaUnsolved
from .recording import ACCEPTED, FORM_REFUSED, NOT_SUBMITTED, REJECTED, BackgroundRecorder, Recorder
from .image import InvalidImageError, load_image
from .settings import CaptchaSettings, read_settings
from .solver import DEFAULT_BATCH_WINDOW, Solver

try:
    from scrapy.utils.asyncio import run_in_thread
except ImportError:  # Scrapy < 2.15
    from twisted.internet.threads import deferToThread

    async def run_in_thread(func, *args):  # type: ignore[no-redef]
        return await maybe_deferred_to_future(deferToThread(func, *args))


if TYPE_CHECKING:
    from typing_extensions import Self

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: Default position in DOWNLOADER_MIDDLEWARES (see the module docstring for why).
PRIORITY = 560
STATS_PREFIX = "captcha"

#: Marks the middleware's own sub-requests, which it must not intercept.
SUBREQUEST_KEY = "_captcha_subrequest"
#: How many solving rounds of its session had finished when a request was sent.
ROUND_KEY = "_captcha_round"
#: Meta keys a sub-request shares with the request that met the captcha: they define the session.
SESSION_META = ("cookiejar", "proxy", "bindaddress", "download_timeout")
SESSION_HEADERS = ("User-Agent", "Accept-Language")
#: Sub-requests use the page's download slot name plus this suffix.
SLOT_SUFFIX = "~captcha"
#: Meta keys that belong to one download and are not carried over when re-fetching a page.
_PER_DOWNLOAD_META = re.compile(r"^(redirect_|retry_times$|download_latency$|download_slot$|_captcha)")


# -- reading answers ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_solver(path: str, version: tuple[int, int], device: str, backend: str = "auto") -> Solver:
    # concurrent solves share forward passes (micro-batching)
    return Solver.from_path(path, device, backend, batch_window=DEFAULT_BATCH_WINDOW)


def load_solver(path: Path, device: str, backend: str = "auto") -> Solver:
    """The model at ``path`` on ``device``, shared by crawlers of one process (WeightsError if unusable)."""
    try:
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (0, 0)
    return _cached_solver(str(path), version, device, backend)


def read_answer(solver: Solver, rules: AnswerRules | None, data: bytes) -> tuple[Prediction, float]:
    """Read one captcha image (blocking: run it in a thread). Returns the prediction and the seconds spent."""
    started = time.perf_counter()
    prediction = solver.solve(load_image(data), rules)  # load_image: InvalidImageError with a reason
    return prediction, time.perf_counter() - started


# -- the middleware -----------------------------------------------------------------------------


class _Session:
    """Solving state of one (site, cookiejar): one round at a time."""

    __slots__ = ("lock", "rounds")

    def __init__(self) -> None:
        self.lock = DeferredLock()
        self.rounds = 0  # rounds finished (passed or not)


def original_url(request: Request) -> str:
    """The URL the spider asked for, before any redirect."""
    return request.meta.get("redirect_urls", [request.url])[0]


def session_key(request: Request) -> tuple[str, Any]:
    """The site and cookiejar that a captcha answer is valid for."""
    return urlsplit(original_url(request)).netloc, request.meta.get("cookiejar")


def _same_page(url: str, other: str) -> bool:
    return canonicalize_url(url) == canonicalize_url(other)


class CaptchaMiddleware:
    """Downloader middleware that solves text-image captchas; see the module docstring."""

    def __init__(self, crawler: Crawler, config: CaptchaSettings, solver: Solver):
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self.solver = solver
        self.rules = answer_rules(solver.config, config.answer_case, config.alphabet)
        self.recorder = BackgroundRecorder(Recorder(config.harvest_dir, config.harvest_max_bytes)) if config.harvest_dir else None
        if self.recorder is not None:
            from scrapy import signals

            crawler.signals.connect(self._recording_closed, signal=signals.spider_closed)
        self._sessions: dict[tuple[str, Any], _Session] = {}
        if config.alphabet:
            unknown = sorted({c for c in config.alphabet} - set(self.answer_alphabet))
            if unknown:
                logger.warning("CAPTCHA_ALPHABET characters the model cannot read: %r", "".join(unknown))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        config = read_settings(crawler.settings)
        return cls(crawler, config, load_solver(config.weights, config.device, config.backend))

    @property
    def answer_alphabet(self) -> str:
        """The characters answers can contain."""
        return self.rules.codec.alphabet if self.rules else self.solver.config.alphabet

    # Scrapy < 2.14 passes a spider argument; newer versions do not.
    def process_request(self, request: Request, spider: Any = None) -> Awaitable[None] | None:
        meta = request.meta
        if meta.get(SUBREQUEST_KEY) or meta.get("captcha_skip") or meta.get("captcha_image"):
            return None
        if ROUND_KEY in meta and "redirect_urls" in meta:
            return None  # a redirect hop keeps the stamp of the request the spider sent
        session = self._session(request)
        if session.lock.locked:
            # Sent now, the request would only meet the captcha being solved: hold it until the
            # round ends (Scrapy awaits what process_request returns).
            return self._after_round(session, meta)
        meta[ROUND_KEY] = session.rounds
        return None

    @staticmethod
    async def _after_round(session: _Session, meta: dict[str, Any]) -> None:
        await maybe_deferred_to_future(session.lock.acquire())
        session.lock.release()
        meta[ROUND_KEY] = session.rounds

    async def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        meta = request.meta
        if meta.get(SUBREQUEST_KEY) or meta.get("captcha_skip"):
            return response
        if meta.get("captcha_image"):
            return await self._answer_image(request, response)
        captcha = await self._find(response, meta)
        if captcha is None:
            return response
        try:
            return await self._pass(request, response, captcha)
        except CaptchaError as exc:
            if not self.config.pass_failed:
                raise
            meta["captcha_failed"] = exc.reason
            return response

    # -- steps --

    def _session(self, request: Request) -> _Session:
        key = session_key(request)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session()
        return session

    def _inc(self, key: str, count: int | float = 1) -> None:
        self.stats.inc_value(f"{STATS_PREFIX}/{key}", count)

    async def _find(self, response: Response, meta: dict[str, Any]) -> CaptchaForm | None:
        find = functools.partial(
            find_captcha,
            response,
            form_selector=meta.get("captcha_form_selector", self.config.form_selector),
            image_selector=meta.get("captcha_image_selector", self.config.image_selector),
            field=meta.get("captcha_field", self.config.field),
        )
        if needs_thread(response):  # parsing a big page would block the reactor
            return await run_in_thread(find)
        return find()

    async def _download(self, request: Request) -> Response:
        engine = self.crawler.engine
        assert engine is not None
        if hasattr(engine, "download_async"):
            return await engine.download_async(request)
        return await maybe_deferred_to_future(engine.download(request))  # Scrapy < 2.14

    async def _pass(self, request: Request, response: Response, captcha: CaptchaForm) -> Response:
        """Get ``request`` past the captcha on ``response``: wait for the session's round or run one."""
        session = self._session(request)
        seen = request.meta.get(ROUND_KEY, session.rounds)
        if session.lock.locked:
            await maybe_deferred_to_future(session.lock.acquire())  # wait for the round in progress
            session.lock.release()
        if session.rounds > seen:  # a round ended since this request was sent: try again first
            seen = session.rounds
            response, captcha = await self._fetch_again(request)
            if captcha is None:
                self._inc("waited")
                return self._deliver(request, response)
        await maybe_deferred_to_future(session.lock.acquire())
        try:
            if session.rounds > seen:  # another round ended while this request fetched again
                response, captcha = await self._fetch_again(request)
                if captcha is None:
                    self._inc("waited")
                    return self._deliver(request, response)
            return await self._solve_round(request, response, captcha)
        finally:
            session.lock.release()

    async def _solve_round(self, request: Request, page: Response, captcha: CaptchaForm) -> Response:
        """Read and submit captchas until the site lets the session through, or give up."""
        session = self._session(request)
        url = original_url(request)
        self._inc("detected")
        try:
            return await self._attempts(request, url, page, captcha)
        except CaptchaError as exc:
            self._inc("gave_up")
            logger.warning("Gave up on the captcha for %s: %s", url, exc.reason, extra={"spider": self.crawler.spider})
            raise
        finally:
            session.rounds += 1

    async def _attempts(self, request: Request, url: str, page: Response, captcha: CaptchaForm | None) -> Response:
        config = self.config
        reasons: list[str] = []
        refused = 0
        for attempt in range(1, config.max_attempts + 1):
            if attempt > 1:  # the page after a rejected answer usually holds the next captcha
                if captcha is None:
                    page, captcha = await self._fetch_again(request)
                if captcha is None:  # the site no longer asks
                    return self._passed(request, url, page, attempt, None, None)
            data = await self._image_bytes(request, url, page, captcha)
            prediction = await self._read(url, data)
            if not prediction.text or prediction.confidence < config.min_confidence:
                self._inc("low_confidence")
                self._record(data, NOT_SUBMITTED, prediction, url, None)
                reasons.append(
                    f"read {prediction.text!r} with confidence {prediction.confidence:.2f}, below CAPTCHA_MIN_CONFIDENCE {config.min_confidence}"
                    if prediction.text else "read no text in the image"
                )
                captcha = None
                continue
            page, target = await self._submit(request, url, page, captcha, prediction.text)
            captcha = await self._find(page, request.meta)
            if captcha is None and page.status >= 400 and _same_page(page.url, target):
                # e.g. an expired CSRF token, or a session cookie that another request replaced
                self._inc("form_refused")
                self._record(data, FORM_REFUSED, prediction, url, prediction.text)
                refused += 1
                reasons.append(f"form refused with HTTP {page.status}")
                continue
            if captcha is None and not self._is_original(request, page):
                page, captcha = await self._fetch_again(request)
            if captcha is None:
                return self._passed(request, url, page, attempt, data, prediction)
            self._inc("incorrect")
            self._record(data, REJECTED, prediction, url, prediction.text)
            reasons.append(f"answer {prediction.text!r} rejected")
        error = CaptchaFormError if refused == config.max_attempts else CaptchaUnsolved
        raise error(url, f"no answer accepted in {config.max_attempts} attempts ({'; '.join(reasons)})")

    def _passed(self, request: Request, url: str, page: Response, attempt: int, data: bytes | None, prediction: Prediction | None) -> Response:
        self._inc("solved")
        if attempt == 1:
            self._inc("solved_first_attempt")
        if prediction is None:
            logger.info("Captcha for %s went away without an answer", url, extra={"spider": self.crawler.spider})
        else:
            logger.info(
                "Solved the captcha for %s: %r (confidence %.2f, attempt %d)", url, prediction.text, prediction.confidence, attempt,
                extra={"spider": self.crawler.spider},
            )
            if data is not None:
                self._record(data, ACCEPTED, prediction, url, prediction.text)
        return self._deliver(request, page)

    def _record(self, data: bytes, verdict: str, prediction: Prediction, url: str, answer: str | None) -> None:
        """Hand the image and the site's verdict to the recorder's thread (CAPTCHA_HARVEST_DIR)."""
        if self.recorder is not None:
            self.recorder.submit(data=data, verdict=verdict, reading=prediction.text, confidence=prediction.confidence,
                                 url=url, answer=answer)

    async def _recording_closed(self) -> None:
        """Finish writing the records before the crawl ends; count them."""
        assert self.recorder is not None
        await run_in_thread(self.recorder.drain)
        for key, count in self.recorder.counts.items():
            if count:
                self.stats.set_value(f"{STATS_PREFIX}/recording/{key}", count)

    def _deliver(self, request: Request, page: Response) -> Response:
        """``page`` as the response to ``request`` (its callback, errback and meta)."""
        return page.replace(request=request)

    def _is_original(self, request: Request, page: Response) -> bool:
        """Is ``page`` the page ``request`` asked for (the site redirected there after the answer)?"""
        if request.method != "GET" and "redirect_urls" not in request.meta:
            return False  # an in-place captcha for a POST: the POST must be sent again
        asked = [*request.meta.get("redirect_urls", ()), request.url]
        return any(_same_page(page.url, candidate) for candidate in asked)

    @staticmethod
    def _sub_request_slot(request: Request) -> str:
        """A download slot of its own for the captcha conversation, next to the page's slot, so
        that sub-requests never queue behind the crawl's requests (nor wait for the slot that the
        request which met the captcha still holds)."""
        page_slot = request.meta.get("download_slot") or urlsplit(request.url).hostname or ""
        return f"{page_slot}{SLOT_SUFFIX}"

    def _sub_request(self, request: Request, url: str, referer: str, **kwargs: Any) -> Request:
        meta = {key: request.meta[key] for key in SESSION_META if key in request.meta}
        meta.update({SUBREQUEST_KEY: True, "allow_offsite": True, "download_slot": self._sub_request_slot(request)})
        sub = Request(url, meta=meta, dont_filter=True, **kwargs)
        self._share_headers(request, sub, referer)
        return sub

    @staticmethod
    def _share_headers(request: Request, sub: Request, referer: str) -> None:
        for name in SESSION_HEADERS:
            if name in request.headers:
                sub.headers[name] = request.headers[name]
        sub.headers["Referer"] = referer

    async def _fetch_again(self, request: Request) -> tuple[Response, CaptchaForm | None]:
        """Fetch the page ``request`` asked for once more, in its session."""
        meta = {key: value for key, value in request.meta.items() if not _PER_DOWNLOAD_META.match(key)}
        meta.update({SUBREQUEST_KEY: True, "download_slot": self._sub_request_slot(request)})
        if "redirect_urls" in request.meta:
            again = request.replace(url=original_url(request), method="GET", body=b"", meta=meta, dont_filter=True)
            again.headers.pop("Content-Type", None)
        else:
            again = request.replace(meta=meta, dont_filter=True)
        page = await self._download(again)
        return page, await self._find(page, request.meta)

    async def _image_bytes(self, request: Request, url: str, page: Response, captcha: CaptchaForm) -> bytes:
        if not captcha.image_url:
            raise self._image_error(url, "the captcha <img> has no src (drawn by JavaScript?)")
        if captcha.is_inline:
            try:
                return captcha.inline_image()
            except ValueError as exc:
                raise self._image_error(url, f"malformed data: URI image ({exc})") from exc
        sub = self._sub_request(request, captcha.image_url, page.url)
        sub.headers["Accept"] = "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5"
        try:
            image = await self._download(sub)
        except Exception as exc:
            raise self._image_error(url, f"downloading the image {captcha.image_url} failed: {exc!r}") from exc
        if not 200 <= image.status < 300:
            raise self._image_error(url, f"the image {captcha.image_url} answered HTTP {image.status}")
        return image.body

    def _image_error(self, url: str, reason: str) -> CaptchaImageError:
        self._inc("image_errors")
        return CaptchaImageError(url, reason)

    async def _read(self, url: str, data: bytes) -> Prediction:
        try:
            prediction, seconds = await run_in_thread(read_answer, self.solver, self.rules, data)
        except InvalidImageError as exc:
            raise self._image_error(url, f"the captcha image is unusable: {exc}") from exc
        self._inc("solve_time", seconds)
        return prediction

    async def _submit(self, request: Request, url: str, page: Response, captcha: CaptchaForm, answer: str) -> tuple[Response, str]:
        """Submit ``answer``; returns the response (after redirects) and the URL the form was sent to."""
        try:
            submission = form2request(captcha.form, {captcha.field: answer})
        except (ValueError, NotImplementedError) as exc:
            raise CaptchaFormError(url, f"cannot build the captcha form submission: {exc}") from exc
        sub = self._sub_request(request, submission.url, page.url, method=submission.method, body=submission.body)
        for name, value in submission.headers:
            sub.headers[name] = value
        self._inc("attempts")
        try:
            return await self._download(sub), sub.url
        except Exception as exc:
            raise CaptchaFormError(url, f"submitting the answer to {submission.url} failed: {exc!r}") from exc

    async def _answer_image(self, request: Request, response: Response) -> Response:
        """Image mode: put the answer of a captcha image response into its meta."""
        try:
            if not 200 <= response.status < 300:
                raise self._image_error(request.url, f"the image answered HTTP {response.status}")
            prediction = await self._read(request.url, response.body)
        except CaptchaImageError as exc:
            logger.warning("Could not read the captcha image %s: %s", request.url, exc.reason, extra={"spider": self.crawler.spider})
            if not self.config.pass_failed:
                raise
            request.meta["captcha_failed"] = exc.reason
            return response
        request.meta["captcha_answer"] = prediction.text
        request.meta["captcha_confidence"] = prediction.confidence
        return response
