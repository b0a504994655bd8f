"""scrapy-captcha: a Scrapy downloader middleware that solves text-image captchas with a local CNN."""

from .codec import SEED_ALPHABET, Codec, LabelError, Prediction
from .image import ImageTooLargeError, InvalidImageError, pad_batch, to_array, to_tensor
from .config import ModelConfig
from .solver import Solver
from .weights import BUNDLED_WEIGHTS, Weights, WeightsError, load_weights, save_weights
from .errors import CaptchaError, CaptchaFormError, CaptchaImageError, CaptchaPolicyError, CaptchaSettingsError, CaptchaUnsolved

# The Scrapy side is imported on first use, so the trainer's worker processes never load Scrapy;
# torch (build_model) too, so the runtime works without it.
_LAZY = {"CaptchaMiddleware": "middleware", "Addon": "addon", "CaptchaForm": "detection", "find_captcha": "detection",
         "build_model": "model"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "Addon",
    "BUNDLED_WEIGHTS",
    "CaptchaError",
    "CaptchaForm",
    "CaptchaFormError",
    "CaptchaImageError",
    "CaptchaMiddleware",
    "CaptchaPolicyError",
    "CaptchaSettingsError",
    "CaptchaUnsolved",
    "Codec",
    "ImageTooLargeError",
    "InvalidImageError",
    "LabelError",
    "ModelConfig",
    "Prediction",
    "SEED_ALPHABET",
    "Solver",
    "Weights",
    "WeightsError",
    "build_model",
    "find_captcha",
    "load_weights",
    "pad_batch",
    "save_weights",
    "to_array",
    "to_tensor",
]
