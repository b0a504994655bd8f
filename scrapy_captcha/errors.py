"""Errors the middleware raises into a request's errback, and its start-up error."""

from __future__ import annotations


class CaptchaError(Exception):
    """A captcha page that could not be passed. ``url`` is the page, ``reason`` says why."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"captcha at {url}: {reason}")
        self.url = url
        self.reason = reason


class CaptchaUnsolved(CaptchaError):
    """The attempts ran out: answers rejected by the site, or too unsure to submit."""


class CaptchaImageError(CaptchaError):
    """The captcha image could not be fetched, or the bytes are not an image."""


class CaptchaFormError(CaptchaError):
    """The captcha form could not be submitted, or the site refused the submission itself."""


class CaptchaPolicyError(CaptchaError):
    """The captcha page points the image or the answer somewhere the middleware does not send to
    (see :mod:`scrapy_captcha.policy`); nothing was sent there."""


class CaptchaSettingsError(ValueError):
    """A ``CAPTCHA_*`` setting with a value the middleware cannot use (raised at start-up)."""
