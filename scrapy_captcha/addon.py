"""The Scrapy add-on: ``ADDONS = {"scrapy_captcha.Addon": 0}`` turns the middleware on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .middleware import PRIORITY, CaptchaMiddleware

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings


class Addon:
    """Adds :class:`~scrapy_captcha.CaptchaMiddleware` to ``DOWNLOADER_MIDDLEWARES`` at its default
    priority, unless the project already lists it (then the project's priority stands)."""

    def update_settings(self, settings: BaseSettings) -> None:
        settings.setdefault_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", CaptchaMiddleware, PRIORITY)
