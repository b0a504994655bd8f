"""The middleware's traffic with the site during a captcha round: the image, the answer, the page again.

Each goes out in the session of the request that met the captcha (:mod:`scrapy_captcha.subrequests`),
while that request leaves its place in ``CONCURRENT_REQUESTS`` to it (:mod:`scrapy_captcha.sessions`);
the image and the answer go only where :mod:`scrapy_captcha.policy` allows, every redirect hop
checked again. Failures come back as the :class:`~scrapy_captcha.errors.CaptchaError` subclass
that names the step: an image that cannot be had costs an attempt, an answer that cannot be sent
ends the round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from form2request import form2request
from scrapy import Request
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import CancelledError

from .detection import CaptchaForm
from .errors import CaptchaError, CaptchaFormError, CaptchaImageError, CaptchaPolicyError
from .policy import ANSWER, IMAGE, check_subrequest_url, data_uri_size, describe_url
from .sessions import Session, not_counted, original_url
from .subrequests import POLICY_KEY, captcha_request, page_again, set_referer

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from .settings import CaptchaSettings

__all__ = ["SiteExchange"]

#: What an image request accepts: the formats captchas come in first.
IMAGE_ACCEPT = "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5"


class SiteExchange:
    """Downloads a captcha round's sub-requests for the middleware.

    ``inc(key)`` counts a stat under the middleware's prefix (``attempts``, ``image_errors``,
    ``policy_refused``); ``session_of(request)`` is the request's :class:`~scrapy_captcha.sessions.Session`.
    """

    def __init__(self, crawler: Crawler, config: CaptchaSettings, inc: Callable[[str], None],
                 session_of: Callable[[Request], Session]):
        self.crawler, self.config, self.inc, self.session_of = crawler, config, inc, session_of

    async def download(self, sub: Request, request: Request) -> Response:
        """Download ``sub`` for ``request``, which meanwhile leaves its place in CONCURRENT_REQUESTS to ``sub``."""
        engine = self.crawler.engine
        assert engine is not None
        with not_counted(self.crawler, request, waiting_in=self.session_of(request)):  # busy meanwhile
            if hasattr(engine, "download_async"):
                return await engine.download_async(sub)
            return await maybe_deferred_to_future(engine.download(sub))  # Scrapy < 2.14

    async def page_again(self, request: Request) -> Response:
        """The page ``request`` asked for, once more, in its session."""
        try:
            return await self.download(page_again(request), request)
        except Exception as exc:
            raise CaptchaError(original_url(request), f"fetching the page again failed: {exc!r}") from exc

    async def image_bytes(self, request: Request, url: str, page: Response, captcha: CaptchaForm) -> bytes:
        """The captcha's image, from its ``data:`` URI or downloaded (at most CAPTCHA_MAX_IMAGE_BYTES)."""
        max_bytes = self.config.max_image_bytes
        if captcha.is_inline:
            if data_uri_size(captcha.image_url) > max_bytes:
                raise self.image_error(url, f"the data: URI image holds over CAPTCHA_MAX_IMAGE_BYTES ({max_bytes:,} bytes)")
            try:
                return captcha.inline_image()
            except ValueError as exc:
                raise self.image_error(url, f"malformed data: URI image ({exc})") from exc
        sub = self._sub_request(request, captcha.image_url, page.url, IMAGE)
        sub.meta["download_maxsize"] = max_bytes  # Scrapy cancels a bigger download
        sub.headers["Accept"] = IMAGE_ACCEPT
        shown = describe_url(captcha.image_url)
        try:
            image = await self.download(sub, request)
        except CaptchaError:
            raise
        except Exception as exc:
            cap = f" (CAPTCHA_MAX_IMAGE_BYTES is {max_bytes:,})" if isinstance(exc, CancelledError) or "max size" in str(exc) else ""
            raise self.image_error(url, f"downloading the image {shown} failed: {exc!r}{cap}") from exc
        if not 200 <= image.status < 300:
            raise self.image_error(url, f"the image {shown} answered HTTP {image.status}")
        return image.body

    async def submit(self, request: Request, url: str, page: Response, captcha: CaptchaForm, answer: str) -> tuple[Response, str]:
        """Submit ``answer``; returns the response (after redirects) and the URL the form was sent to."""
        try:
            submission = form2request(captcha.form, {captcha.field: answer})
        except (ValueError, NotImplementedError) as exc:
            raise CaptchaFormError(url, f"cannot build the captcha form submission: {exc}") from exc
        sub = self._sub_request(request, submission.url, page.url, ANSWER, method=submission.method, body=submission.body)
        for name, value in submission.headers:
            sub.headers[name] = value
        self.inc("attempts")
        try:
            return await self.download(sub, request), sub.url
        except CaptchaError:
            raise
        except Exception as exc:
            raise CaptchaFormError(url, f"submitting the answer to {describe_url(submission.url)} failed: {exc!r}") from exc

    def check_redirect_hop(self, hop: Request) -> None:
        """A redirect of an image or answer request must obey the URL policy too (nothing is sent otherwise)."""
        page_url, kind, url = hop.meta[POLICY_KEY]
        reason = self._refusal(hop.url, page_url, kind)
        if reason is not None:
            self.inc("policy_refused")
            raise CaptchaPolicyError(url, f"redirected from {describe_url(hop.meta['redirect_urls'][0])}: {reason}")
        set_referer(hop, page_url)

    def image_error(self, url: str, reason: str) -> CaptchaImageError:
        """A counted :class:`CaptchaImageError` for the page at ``url``."""
        self.inc("image_errors")
        return CaptchaImageError(url, reason)

    def _refusal(self, url: str, page_url: str, kind: str) -> str | None:
        """Why the URL policy refuses a ``kind`` sub-request to ``url`` (``None``: allowed)."""
        allowed_domains = getattr(self.crawler.spider, "allowed_domains", None) or ()
        return check_subrequest_url(url, page_url, kind, allowed_domains, self.config.allowed_hosts)

    def _sub_request(self, request: Request, url: str, page_url: str, kind: str, **kwargs: Any) -> Request:
        """An image or answer request in the session of ``request``; CaptchaPolicyError if ``url`` is not allowed."""
        reason = self._refusal(url, page_url, kind)
        if reason is not None:
            self.inc("policy_refused")
            raise CaptchaPolicyError(original_url(request), reason)
        return captcha_request(request, url, page_url, kind, **kwargs)
