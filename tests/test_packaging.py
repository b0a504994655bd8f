"""The runtime stands alone: scrapy_captcha imports and solves without the trainer's extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINER_EXTRA = ("trainer", "captcha", "torchvision", "matplotlib", "tqdm")


def test_runtime_solves_without_the_trainer_extra(tmp_path):
    image = tmp_path / "captcha.png"
    from captcha.image import ImageCaptcha

    ImageCaptcha(width=160, height=60).write("aB3x", str(image))
    script = textwrap.dedent(f"""
        import sys
        for name in {TRAINER_EXTRA!r}:
            sys.modules[name] = None  # any import of these now fails
        from scrapy_captcha import CaptchaMiddleware, Solver
        prediction = Solver.from_path().solve(open({str(image)!r}, "rb").read())
        print(len(prediction.text), CaptchaMiddleware.__name__)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "CaptchaMiddleware"]


def test_bundled_weights_are_packaged():
    setup = (REPO / "setup.cfg").read_text()
    assert "scrapy_captcha = weights/*.pt" in setup
    assert (REPO / "scrapy_captcha" / "weights" / "default.pt").stat().st_size <= 8 * 2**20
