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
    fetched instead (default 0.02: only answers to images nothing like a captcha; 0 always submits)
CAPTCHA_ANSWER_CASE - "as-is" (default), "lower" or "upper": the case the site expects
CAPTCHA_ALPHABET - characters the site's captchas can contain; the model only answers with these
    (default: no restriction)
CAPTCHA_ANSWER_LENGTH - 4 or "4-6": how many characters the site's answers have; the model's
    reading keeps to it (default: any length)
CAPTCHA_LEARN_AFTER - once a site has accepted this many answers, all of one length, its captchas
    are read keeping to it, as CAPTCHA_ANSWER_LENGTH would; with 4 times as many letters nearly all
    of one case, as CAPTCHA_ANSWER_CASE would; with 8 times as many characters and no digit (or no
    letter), as CAPTCHA_ALPHABET would. A setting given is never overridden; 10 rejections in a
    row forget what was learned. With the route, the captchas its gate gives the default model are
    read by the generalist every other time until each has 32 verdicts; the generalist takes the
    site if clearly ahead. See scrapy_captcha.learning, scrapy_captcha.model_trial (default 8; 0: never)
CAPTCHA_LEARN_FILE - a JSON file that keeps what each site taught for the next crawl: read at
    start-up, written when something is decided (at most every 30 s) and when the spider closes
    (default: captcha-learned.json in JOBDIR when set; "" or False: none). See scrapy_captcha.site_knowledge
CAPTCHA_FORM_SELECTOR, CAPTCHA_IMAGE_SELECTOR - CSS or XPath (starting with "/" or "(") of the
    captcha form and image, instead of the heuristics
CAPTCHA_FIELD - name (or selector) of the input that takes the answer
CAPTCHA_HARVEST_DIR - record every captcha image read here, with its answer and the site's verdict;
    accepted ones as {index}-{answer}.png (see scrapy_captcha.recording)
CAPTCHA_HARVEST_MAX_MB - stop recording once that folder holds this many megabytes (default: no cap)
CAPTCHA_PASS_FAILED - True to give the captcha page to the callback, with
    meta["captcha_failed"] set to the reason, instead of failing the request (default False)
CAPTCHA_ARITHMETIC - "auto" (default): a text that reads as a complete arithmetic expression
    ("7+4=?", "9x3=") is answered with its result; True: always (a text that is none is not
    submitted); False: never. See scrapy_captcha.arithmetic; stats captcha/arithmetic
    (results submitted) and captcha/not_arithmetic
CAPTCHA_ALLOWED_HOSTS - hosts besides the captcha page's origin and the spider's allowed_domains
    that the image and the answer may be sent to: "cdn.example.com" (and its subdomains, any
    port) or "cdn.example.com:8443" (that port only); see scrapy_captcha.policy (default: none)
CAPTCHA_MAX_IMAGE_BYTES - a bigger captcha image is not downloaded further nor read (default 2 MiB)
CAPTCHA_MAX_IMAGE_PIXELS - an image declaring more pixels is refused before decoding (default 4 Mpx)

Request.meta keys: "captcha_skip" (True: leave this request alone), "captcha_form_selector",
"captcha_image_selector", "captcha_field" (per-request selectors), "captcha_image" (True: the
response is a captcha image, downloaded up to CAPTCHA_MAX_IMAGE_BYTES; its answer and confidence
go to meta["captcha_answer"] and meta["captcha_confidence"]).

Stats: captcha/detected, captcha/attempts, captcha/solved, captcha/solved_first_attempt,
captcha/incorrect, captcha/form_refused (submissions the site answered with an HTTP error and no
new captcha, e.g. an expired CSRF token), captcha/low_confidence, captcha/image_errors,
captcha/gave_up, captcha/solve_time (seconds in the model), captcha/waited,
captcha/policy_refused (image or answer URLs refused by scrapy_captcha.policy: nothing sent),
captcha/failed_with_round (requests that waited for a round that failed, and fail with it),
captcha/learned and captcha/forgotten (sites whose answer shape was learned, and forgotten),
captcha/trial/gate and captcha/trial/otherwise (sites whose trial of the route's models ended
with the gate choosing, or with the generalist taking every captcha), captcha/remembered (sites
read from the start as the learn file says).
Every captcha page met ends as captcha/detected = captcha/solved + captcha/gave_up.

Settings are read and checked once, by :func:`scrapy_captcha.settings.read_settings`.

Order: PRIORITY (585) puts the middleware after HttpCompressionMiddleware (590), RedirectMiddleware
(600) and CookiesMiddleware (700) on the response path, so it sees decompressed pages at the end of
redirect chains with the session cookies stored; before MetaRefreshMiddleware (580), so a captcha
page that also meta-refreshes (to itself) is solved instead of becoming a duplicate request that
the dupefilter drops; and before RetryMiddleware (550), so a captcha served with 429 or 503 is
solved rather than retried blindly. Its own requests (image, answer, page again; see
scrapy_captcha.exchange and scrapy_captcha.subrequests) go through every downloader middleware
but not the scheduler, in the session and a download slot of their own
(CONCURRENT_REQUESTS_PER_DOMAIN = 1 works). The image
and the answer go only where scrapy_captcha.policy allows (every redirect hop checked again), are
never retried (an answer is sent once; a failed image costs an attempt and a fresh captcha) and
never follow a meta refresh.

Sessions: one solving round at a time per (site, cookiejar) (see scrapy_captcha.sessions).
Requests of that session that meet the captcha meanwhile wait for the round, then fetch their
page again without solving (captcha/waited); requests about to be sent while a round runs are
held until it ends. Waiting requests (up to 64 per session) do not count against
CONCURRENT_REQUESTS. When a round
fails, the requests that waited for it fail with its error (captcha/failed_with_round) instead of
each running a round of its own; the next request of the session that meets a captcha starts a
new one.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Awaitable
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from w3lib.url import canonicalize_url

from .arithmetic import arithmetic_answer
from .codec import Prediction
from .detection import CaptchaForm, find_captcha, needs_thread
from .exchange import SiteExchange
from .errors import CaptchaError, CaptchaFormError, CaptchaImageError, CaptchaPolicyError, CaptchaUnsolved
from .recording import ACCEPTED, FORM_REFUSED, NOT_SUBMITTED, REJECTED, BackgroundRecorder, Recorder
from .image import InvalidImageError
from .learning import SiteLearning
from .model_trial import ModelTrials
from .sessions import Session, not_counted, original_url, session_key
from .subrequests import POLICY_KEY, SUBREQUEST_KEY
from .settings import CaptchaSettings, read_settings
from .site_knowledge import SiteKnowledge, rules_builder
from .solver import Solver, load_solver, read_answer

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
PRIORITY = 585
STATS_PREFIX = "captcha"

#: How many solving rounds of its session had finished when a request was sent.
ROUND_KEY = "_captcha_round"


def _same_page(url: str, other: str) -> bool:
    return canonicalize_url(url) == canonicalize_url(other)


def _site(url: str) -> str:
    """The site whose answers teach each other (scrapy_captcha.learning): the host and port."""
    return urlsplit(url).netloc


def _summary(reasons: list[str]) -> str:
    """Reasons in order, each once, with how many times it happened."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return "; ".join(reason if count == 1 else f"{reason} (x{count})" for reason, count in counts.items())


class CaptchaMiddleware:
    """Downloader middleware that solves text-image captchas; see the module docstring."""

    def __init__(self, crawler: Crawler, config: CaptchaSettings, solver: Solver):
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self.solver = solver
        self.rules = solver.answer_rules(config.answer_case, config.alphabet, config.answer_length)
        learning = SiteLearning(rules_builder(solver), self.rules, config.learn_after, config.answer_case, config.answer_length,
                                config.alphabet)
        route = getattr(solver, "route", None)  # a route's models are tried on each site's verdicts (scrapy_captcha.model_trial)
        trials = ModelTrials(route.first.name) if route is not None and config.learn_after else None
        self.sites = SiteKnowledge(solver, learning, trials, self._inc, lambda: {"spider": crawler.spider}, config.learn_file)
        self.sites.load()
        if config.learn_file is not None:
            crawler.signals.connect(self.sites.save, signal=signals.spider_closed)
        self.recorder = BackgroundRecorder(Recorder(config.harvest_dir, config.harvest_max_bytes)) if config.harvest_dir else None
        if self.recorder is not None:
            crawler.signals.connect(self._recording_closed, signal=signals.spider_closed)
        crawler.signals.connect(self._keep_open_while_solving, signal=signals.spider_idle)
        self._sessions: dict[tuple[str, Any], Session] = {}
        self.exchange = SiteExchange(crawler, config, self._inc, self._session)
        if config.alphabet:
            unknown = sorted({c for c in config.alphabet} - set(self.answer_alphabet))
            if unknown:
                logger.warning("CAPTCHA_ALPHABET characters the model cannot read: %r", "".join(unknown))

    def _keep_open_while_solving(self) -> None:
        # Requests waiting for a round, and the round's own request while its sub-requests
        # download, are kept out of Downloader.active (see sessions.py), which is all that
        # Scrapy's idle check looks at: without this the spider could close mid-round.
        if any(session.busy for session in self._sessions.values()):
            raise DontCloseSpider

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
        if meta.get(SUBREQUEST_KEY):
            if POLICY_KEY in meta and "redirect_urls" in meta:
                self.exchange.check_redirect_hop(request)
            return None
        if meta.get("captcha_image"):
            meta.setdefault("download_maxsize", self.config.max_image_bytes)
            return None
        if meta.get("captcha_skip"):
            return None
        if ROUND_KEY in meta and "redirect_urls" in meta:
            return None  # a redirect hop keeps the stamp of the request the spider sent
        session = self._session(request)
        if session.lock.locked:
            # Sent now, the request would only meet the captcha being solved: hold it until the
            # round ends (Scrapy awaits what process_request returns).
            return self._after_round(request, session)
        meta[ROUND_KEY] = session.rounds
        return None

    async def _after_round(self, request: Request, session: Session) -> None:
        with not_counted(self.crawler, request, waiting_in=session):
            await session.round_end()
        if session.last_failure is None:
            request.meta[ROUND_KEY] = session.rounds
        elif not self.config.pass_failed:
            raise self._failed_with_round(request, session.last_failure)
        else:  # sent for its page, as if before that round: a captcha shares its failure, no new round
            request.meta[ROUND_KEY] = session.rounds - 1

    async def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        meta = request.meta
        if meta.get(SUBREQUEST_KEY):
            if POLICY_KEY in meta:
                # The image's or the answer's final response (RedirectMiddleware, 600, ran already):
                # MetaRefreshMiddleware (580) must not turn a captcha page into more requests.
                meta["dont_redirect"] = True
            return response
        if meta.get("captcha_skip"):
            return response
        if meta.get("captcha_image"):
            return await self._answer_image(request, response)
        try:
            captcha = await self._find(response, meta)
        except ValueError as exc:  # a per-request selector that cannot be read
            raise CaptchaFormError(original_url(request), str(exc)) from exc
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

    def _session(self, request: Request) -> Session:
        key = session_key(request)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = Session()
        return session

    def _failed_with_round(self, request: Request, failure: CaptchaError) -> CaptchaError:
        """The error for a request that waited for a round that ended in ``failure``."""
        self._inc("failed_with_round")
        shared = type(failure)(original_url(request), f"the session's captcha round for {failure.url} failed: {failure.reason}")
        return shared

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

    async def _pass(self, request: Request, response: Response, captcha: CaptchaForm) -> Response:
        """Get ``request`` past the captcha on ``response``: share the session's round or run one."""
        session = self._session(request)
        seen = request.meta.get(ROUND_KEY, session.rounds)
        while True:
            if session.lock.locked:
                with not_counted(self.crawler, request, waiting_in=session):
                    await session.round_end()
            if session.rounds == seen:
                break
            # A round ended since this request was sent: its outcome is this request's too.
            if session.last_failure is not None:
                raise self._failed_with_round(request, session.last_failure)
            seen = session.rounds
            response, captcha = await self._fetch_again(request)
            if captcha is None:
                self._inc("waited")
                return self._deliver(request, response)
        await maybe_deferred_to_future(session.lock.acquire())  # free: taken at once
        try:
            return await self._solve_round(request, response, captcha)
        finally:
            session.lock.release()

    async def _solve_round(self, request: Request, page: Response, captcha: CaptchaForm) -> Response:
        """Read and submit captchas until the site lets the session through, or give up."""
        session = self._session(request)
        url = original_url(request)
        self._inc("detected")
        failure: CaptchaError | None = None
        try:
            return await self._attempts(request, url, page, captcha)
        except CaptchaError as exc:
            failure = exc
            raise
        except Exception as exc:  # a bug, or an error nobody foresaw: still a CaptchaError, counted
            logger.exception("Unexpected error in the captcha round for %s", url, extra={"spider": self.crawler.spider})
            failure = CaptchaError(url, f"unexpected {type(exc).__name__} in the captcha round: {exc}")
            raise failure from exc
        finally:
            if failure is not None:
                self._inc("gave_up")
                logger.warning("Gave up on the captcha for %s: %s", url, failure.reason, extra={"spider": self.crawler.spider})
            session.ended(failure)

    async def _attempts(self, request: Request, url: str, page: Response, captcha: CaptchaForm | None) -> Response:
        config = self.config
        reasons: list[str] = []
        refused = image_failures = 0
        for attempt in range(1, config.max_attempts + 1):
            if attempt > 1:  # the page after a rejected answer usually holds the next captcha
                if captcha is None:
                    page, captcha = await self._fetch_again(request)
                if captcha is None:  # the site no longer asks
                    return self._passed(request, url, page, attempt, None, None)
            if not captcha.image_url:
                raise self.exchange.image_error(url, "the captcha <img> has no src (drawn by JavaScript?)")
            try:
                data = await self.exchange.image_bytes(request, url, page, captcha)
                prediction, arm = await self.sites.read(_site(url), functools.partial(self._read, url, data))
            except CaptchaPolicyError:
                raise  # the next captcha would point to the same place
            except CaptchaImageError as exc:  # e.g. a 404 or a timeout: try a fresh captcha
                image_failures += 1
                reasons.append(exc.reason)
                captcha = None
                continue
            if not prediction.text or prediction.confidence < config.min_confidence:
                self._inc("low_confidence")
                self._record(data, NOT_SUBMITTED, prediction, url, None)
                self.sites.verdict(_site(url), arm, accepted=False)  # a shape that no longer fits makes readings unsure too
                reasons.append(
                    f"read {prediction.text!r} with confidence {prediction.confidence:.2f}, below CAPTCHA_MIN_CONFIDENCE {config.min_confidence}"
                    if prediction.text else "read no text in the image"
                )
                captcha = None
                continue
            answer, computed = arithmetic_answer(prediction.text, config.arithmetic)
            if answer is None:  # CAPTCHA_ARITHMETIC is True and what was read is no expression
                self._inc("not_arithmetic")
                self._record(data, NOT_SUBMITTED, prediction, url, None)
                reasons.append(f"read {prediction.text!r}, not an arithmetic expression (CAPTCHA_ARITHMETIC is True)")
                captcha = None
                continue
            if computed:
                self._inc("arithmetic")
            page, target = await self.exchange.submit(request, url, page, captcha, answer)
            captcha = await self._find(page, request.meta)
            if captcha is None and page.status >= 400 and _same_page(page.url, target):
                # e.g. an expired CSRF token, or a session cookie that another request replaced
                self._inc("form_refused")
                self._record(data, FORM_REFUSED, prediction, url, answer)
                refused += 1
                reasons.append(f"form refused with HTTP {page.status}")
                continue
            if captcha is None and not self._is_original(request, page):
                page, captcha = await self._fetch_again(request)
            if captcha is None:
                return self._passed(request, url, page, attempt, data, prediction, answer, arm)
            self._inc("incorrect")
            self._record(data, REJECTED, prediction, url, answer)
            self.sites.verdict(_site(url), arm, accepted=False)
            reasons.append(f"answer {answer!r} rejected")
        error = CaptchaFormError if refused == config.max_attempts else CaptchaUnsolved
        if image_failures == config.max_attempts:
            error = CaptchaImageError
        raise error(url, f"no answer accepted in {config.max_attempts} attempts ({_summary(reasons)})")

    def _passed(self, request: Request, url: str, page: Response, attempt: int, data: bytes | None, prediction: Prediction | None,
                answer: str | None = None, arm: str | None = None) -> Response:
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
                self._record(data, ACCEPTED, prediction, url, answer or prediction.text)
                # an arithmetic result is not the captcha's text: it counts for the trial only
                self.sites.verdict(_site(url), arm, accepted=True, text=prediction.text if answer in (None, prediction.text) else None)
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

    async def _fetch_again(self, request: Request) -> tuple[Response, CaptchaForm | None]:
        """Fetch the page ``request`` asked for once more, in its session, and look for a captcha on it."""
        page = await self.exchange.page_again(request)
        return page, await self._find(page, request.meta)

    async def _read(self, url: str, data: bytes, rules: Any, answered: bool = True) -> Prediction:
        try:
            prediction, seconds = await run_in_thread(
                read_answer, self.solver, rules, data, self.config.max_image_bytes, self.config.max_image_pixels
            )
        except InvalidImageError as exc:
            raise self.exchange.image_error(url, f"the captcha image is unusable: {exc}") from exc
        self._inc("solve_time", seconds)
        if prediction.model and answered:  # a route chose the model (CAPTCHA_WEIGHTS = "auto")
            self._inc(f"read_by/{prediction.model}")
        if prediction.other_views:  # the model was unsure and read other views of the image too
            self._inc("other_views")
        return prediction

    async def _answer_image(self, request: Request, response: Response) -> Response:
        """Image mode: put the answer of a captcha image response into its meta."""
        try:
            if not 200 <= response.status < 300:
                raise self.exchange.image_error(request.url, f"the image answered HTTP {response.status}")
            prediction = await self._read(request.url, response.body, self.rules)  # no verdict: nothing learned
        except CaptchaImageError as exc:
            logger.warning("Could not read the captcha image %s: %s", request.url, exc.reason, extra={"spider": self.crawler.spider})
            if not self.config.pass_failed:
                raise
            request.meta["captcha_failed"] = exc.reason
            return response
        answer, _ = arithmetic_answer(prediction.text, self.config.arithmetic)
        request.meta["captcha_answer"] = prediction.text if answer is None else answer
        request.meta["captcha_confidence"] = prediction.confidence
        return response
