"""The ``CAPTCHA_*`` settings: read once, checked, and turned into a :class:`CaptchaSettings`.

Bad values stop the crawl at start-up with a :class:`~scrapy_captcha.errors.CaptchaSettingsError`
naming the setting. The settings themselves are listed in :mod:`scrapy_captcha.middleware`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

from .arithmetic import parse_arithmetic_setting
from .detection import select
from .errors import CaptchaSettingsError
from .image import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from .learning import LEARN_AFTER
from .learn_file import NAME_IN_JOBDIR as LEARN_FILE_NAME
from .policy import HostRule, parse_allowed_hosts
from .backends import resolve as resolve_backend
from .weights import DEFAULT_MODEL, weights_path

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

ANSWER_CASES = ("as-is", "lower", "upper")
#: Default CAPTCHA_MIN_CONFIDENCE: answers this unsure come from images nothing like a captcha (a
#: blank, noise: 0.002-0.009 with the bundled model), whereas none of 2000 test captchas read below
#: 0.16 (README, "Security").
DEFAULT_MIN_CONFIDENCE = 0.02


@dataclass(frozen=True)
class CaptchaSettings:
    """The ``CAPTCHA_*`` settings, checked."""

    weights: Path
    device: str = "cpu"
    backend: str = "auto"  # CAPTCHA_BACKEND: "auto", "onnx" or "torch" (scrapy_captcha.backends)
    max_attempts: int = 5
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    answer_case: str = "as-is"
    alphabet: str | None = None
    answer_length: tuple[int, int] | None = None  # CAPTCHA_ANSWER_LENGTH: shortest and longest answer
    learn_after: int = LEARN_AFTER  # CAPTCHA_LEARN_AFTER: accepted answers before a site's shape applies; 0: never
    learn_file: Path | None = None  # CAPTCHA_LEARN_FILE (or JOBDIR's): what sites taught, kept between crawls
    form_selector: str | None = None
    image_selector: str | None = None
    field: str | None = None
    harvest_dir: Path | None = None
    harvest_max_bytes: int | None = None  # CAPTCHA_HARVEST_MAX_MB; None: no cap
    pass_failed: bool = False
    arithmetic: str | bool = "auto"  # CAPTCHA_ARITHMETIC: "auto", True or False (scrapy_captcha.arithmetic)
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    allowed_hosts: tuple[HostRule, ...] = ()


def read_settings(settings: BaseSettings) -> CaptchaSettings:
    """Read and check the ``CAPTCHA_*`` settings; ``NotConfigured`` if the middleware is off."""
    if not settings.getbool("CAPTCHA_ENABLED", True):
        raise NotConfigured("CAPTCHA_ENABLED is False")
    try:
        max_attempts = settings.getint("CAPTCHA_MAX_ATTEMPTS", 5)
        min_confidence = settings.getfloat("CAPTCHA_MIN_CONFIDENCE", DEFAULT_MIN_CONFIDENCE)
    except (TypeError, ValueError) as exc:
        raise CaptchaSettingsError(f"CAPTCHA_MAX_ATTEMPTS / CAPTCHA_MIN_CONFIDENCE: {exc}") from exc
    if max_attempts < 1:
        raise CaptchaSettingsError(f"CAPTCHA_MAX_ATTEMPTS must be 1 or more, got {max_attempts}")
    if not 0.0 <= min_confidence <= 1.0:
        raise CaptchaSettingsError(f"CAPTCHA_MIN_CONFIDENCE must be between 0 and 1, got {min_confidence}")
    answer_case = str(settings.get("CAPTCHA_ANSWER_CASE") or "as-is").strip().lower()
    if answer_case not in ANSWER_CASES:
        raise CaptchaSettingsError(f"CAPTCHA_ANSWER_CASE must be one of {ANSWER_CASES}, got {settings.get('CAPTCHA_ANSWER_CASE')!r}")
    alphabet = settings.get("CAPTCHA_ALPHABET") or None
    if alphabet is not None and (not isinstance(alphabet, str) or not alphabet.strip()):
        raise CaptchaSettingsError(f"CAPTCHA_ALPHABET must be a non-empty string of characters, got {alphabet!r}")
    selectors = {name: _selector_setting(settings, name) for name in ("CAPTCHA_FORM_SELECTOR", "CAPTCHA_IMAGE_SELECTOR", "CAPTCHA_FIELD")}
    harvest = settings.get("CAPTCHA_HARVEST_DIR") or None
    harvest_max_mb = settings.get("CAPTCHA_HARVEST_MAX_MB")
    try:
        harvest_max_mb = float(harvest_max_mb) if harvest_max_mb not in (None, "") else None
    except (TypeError, ValueError):
        raise CaptchaSettingsError(f"CAPTCHA_HARVEST_MAX_MB must be a number of megabytes, got {harvest_max_mb!r}") from None
    if harvest_max_mb is not None and not harvest_max_mb > 0:
        raise CaptchaSettingsError(f"CAPTCHA_HARVEST_MAX_MB must be above 0, got {harvest_max_mb!r}")
    weights = weights_path(settings.get("CAPTCHA_WEIGHTS") or DEFAULT_MODEL)
    learn_after = _learn_after(settings)
    device = str(settings.get("CAPTCHA_DEVICE") or "cpu").strip().lower()  # checked by the backend as it loads
    backend = str(settings.get("CAPTCHA_BACKEND") or "auto").strip().lower()
    resolve_backend(weights, backend, device)  # a bad CAPTCHA_BACKEND, or one that cannot read CAPTCHA_WEIGHTS
    return CaptchaSettings(
        weights=weights,
        device=device,
        backend=backend,
        max_attempts=max_attempts,
        min_confidence=min_confidence,
        answer_case=answer_case,
        alphabet=alphabet.strip() if alphabet else None,
        answer_length=read_answer_length(settings.get("CAPTCHA_ANSWER_LENGTH")),
        learn_after=learn_after,
        learn_file=_learn_file(settings) if learn_after else None,
        form_selector=selectors["CAPTCHA_FORM_SELECTOR"],
        image_selector=selectors["CAPTCHA_IMAGE_SELECTOR"],
        field=selectors["CAPTCHA_FIELD"],
        harvest_dir=prepare_harvest_dir(harvest) if harvest else None,
        harvest_max_bytes=int(harvest_max_mb * 1e6) if harvest_max_mb is not None else None,
        pass_failed=settings.getbool("CAPTCHA_PASS_FAILED", False),
        arithmetic=read_arithmetic(settings),
        max_image_bytes=_positive_int(settings, "CAPTCHA_MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES),
        max_image_pixels=_positive_int(settings, "CAPTCHA_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
        allowed_hosts=_allowed_hosts(settings),
    )


def read_answer_length(value: Any) -> tuple[int, int] | None:
    """``CAPTCHA_ANSWER_LENGTH``: ``4``, ``"4"``, ``"4-6"`` or ``(4, 6)`` -> (shortest, longest); None when unset."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            lengths = (int(value[0]), int(value[1]))
        else:
            low, dash, high = str(value).strip().partition("-")
            lengths = (int(low), int(high) if dash else int(low))
    except (TypeError, ValueError):
        raise CaptchaSettingsError(f"CAPTCHA_ANSWER_LENGTH must be a number of characters (4) or a range (4-6), got {value!r}") from None
    if lengths[0] < 1 or lengths[1] < lengths[0]:
        raise CaptchaSettingsError(f"CAPTCHA_ANSWER_LENGTH must be 1 or more, shortest first, got {value!r}")
    return lengths


def _learn_after(settings: BaseSettings) -> int:
    value = settings.get("CAPTCHA_LEARN_AFTER")
    if value is None or value == "":
        return LEARN_AFTER
    if value is False:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or value is True or isinstance(value, float) and value != number:
        raise CaptchaSettingsError(f"CAPTCHA_LEARN_AFTER must be a whole number of accepted answers (0: never learn), got {value!r}")
    return number


def _learn_file(settings: BaseSettings) -> Path | None:
    """CAPTCHA_LEARN_FILE; unset: ``captcha-learned.json`` in JOBDIR if the crawl has one; "" or False: none."""
    value = settings.get("CAPTCHA_LEARN_FILE")
    if value is None:
        job_dir = settings.get("JOBDIR")
        if not job_dir:
            return None
        value = Path(job_dir) / LEARN_FILE_NAME
    if value == "" or value is False:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise CaptchaSettingsError(f"CAPTCHA_LEARN_FILE must be a file path, got {value!r}")
    path = Path(value).expanduser()
    if path.is_dir():
        raise CaptchaSettingsError(f"CAPTCHA_LEARN_FILE {str(path)!r} is a directory; name a file in it")
    _make_writable_folder(path.parent, f"CAPTCHA_LEARN_FILE {str(path)!r}: its folder")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise CaptchaSettingsError(f"CAPTCHA_LEARN_FILE {str(path)!r} cannot be read and written")
    return path


def _positive_int(settings: BaseSettings, name: str, default: int) -> int:
    value = settings.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, float) and value != number:
        raise CaptchaSettingsError(f"{name} must be a whole number above 0, got {value!r}")
    return number


def _allowed_hosts(settings: BaseSettings) -> tuple[HostRule, ...]:
    try:
        return parse_allowed_hosts(settings.getlist("CAPTCHA_ALLOWED_HOSTS"))
    except ValueError as exc:
        raise CaptchaSettingsError(f"CAPTCHA_ALLOWED_HOSTS: {exc}") from exc


def read_arithmetic(settings: BaseSettings) -> str | bool:
    """CAPTCHA_ARITHMETIC: "auto" (default), True or False."""
    try:
        return parse_arithmetic_setting(settings.get("CAPTCHA_ARITHMETIC", "auto"))
    except ValueError as exc:
        raise CaptchaSettingsError(str(exc)) from None


def _selector_setting(settings: BaseSettings, name: str) -> str | None:
    value = settings.get(name) or None
    if value is None:
        return None
    if not isinstance(value, str):
        raise CaptchaSettingsError(f"{name} must be a string, got {value!r}")
    check_selector(value, name)
    return value


def check_selector(selector: str, name: str = "selector") -> None:
    """Raise :class:`CaptchaSettingsError` if ``selector`` is neither valid CSS nor valid XPath."""
    from parsel import Selector

    try:
        select(Selector(text="<html><body></body></html>"), selector)
    except Exception as exc:  # cssselect and lxml raise assorted errors
        raise CaptchaSettingsError(f"{name} {selector!r} is not a valid CSS/XPath selector: {exc}") from exc


def prepare_harvest_dir(path: str | os.PathLike[str]) -> Path:
    """Create the harvest directory; a clear error if it cannot be written."""
    directory = Path(path).expanduser()
    _make_writable_folder(directory, f"CAPTCHA_HARVEST_DIR {str(directory)!r}")
    return directory


def _make_writable_folder(directory: Path, named: str) -> None:
    """Create ``directory`` (and its parents); a :class:`CaptchaSettingsError` starting with ``named`` if it cannot be,
    or cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaptchaSettingsError(f"{named} cannot be created: {exc}") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CaptchaSettingsError(f"{named} is not writable")
