"""Packaging: the wheel holds the runtime and the bundled weights, nothing else; the plain install
(no extra) crawls the demo site without torch; the runtime stands alone without the trainer."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TRAINER_EXTRA = ("trainer", "captcha", "torchvision", "matplotlib", "tqdm", "torch", "onnx")
#: The plain install's virtualenv is kept here between runs (only our wheel is reinstalled).
PLAIN_VENV = REPO / ".venv" / "plain-install"
_SKIP_ANYWHERE = shutil.ignore_patterns(".git", ".venv*", "*.egg-info", "__pycache__", ".pytest_cache", "*.tmp")
_SKIP_PATHS = {"data", "runs", "build", "dist", "benchmarks/data"}  # large or generated; a package's own data/ is kept


def _skip(folder: str, names: list[str]) -> set[str]:
    relative = Path(folder).relative_to(REPO)
    return set(_SKIP_ANYWHERE(folder, names)) | {name for name in names if (relative / name).as_posix() in _SKIP_PATHS}


def test_runtime_solves_without_torch_and_the_trainer_extra(tmp_path):
    image = tmp_path / "captcha.png"
    from captcha.image import ImageCaptcha

    ImageCaptcha(width=160, height=60).write("aB3x", str(image))
    script = textwrap.dedent(f"""
        import sys
        for name in {TRAINER_EXTRA!r}:
            sys.modules[name] = None  # any import of these now fails
        from scrapy_captcha import CaptchaMiddleware, Solver
        from scrapy_captcha.settings import read_settings
        from scrapy.settings import Settings
        solver = Solver.from_path()
        prediction = solver.solve(open({str(image)!r}, "rb").read())
        read_settings(Settings())
        print(len(prediction.text), CaptchaMiddleware.__name__, solver.backend.name)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "CaptchaMiddleware", "onnx"]


def test_the_torch_backend_without_torch_says_what_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        from scrapy_captcha import Solver
        try:
            Solver.from_path(backend="torch")
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "BackendError" in done.stdout and "scrapy-captcha[torch]" in done.stdout, done.stdout + done.stderr


def build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the checkout (the build writes build/ and *.egg-info)."""
    source = out / "source"
    shutil.copytree(REPO, source, ignore=_skip)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = out.glob("scrapy_captcha-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_the_runtime_and_the_bundled_weights_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "scrapy_captcha/weights/default.pt" in names and "scrapy_captcha/weights/default.onnx" in names
    # the middleware's default, the route "auto": its file and its gate (its two models are the bundled ones)
    assert {"scrapy_captcha/weights/auto.json", "scrapy_captcha/weights/gate/style.onnx",
            "scrapy_captcha/weights/gate/style.pt", "scrapy_captcha/weights/generalist.onnx"} <= set(names)
    assert "scrapy_captcha/backends/onnx_backend.py" in names and "trainer/export.py" in names
    tops = {name.split("/")[0] for name in names}
    assert tops <= {"scrapy_captcha", "trainer", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "example_project/")) or "__pycache__" in name]
    for name in ("default.pt", "default.onnx"):
        packed = zipfile.ZipFile(wheel).getinfo(f"scrapy_captcha/weights/{name}").file_size
        assert packed == (REPO / "scrapy_captcha" / "weights" / name).stat().st_size
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    plain = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
             if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(r.split(">")[0].split("=")[0].lower() for r in plain) == ["form2request", "numpy", "onnxruntime", "pillow", "scrapy"]


def plain_venv(wheel: Path) -> Path:
    """A virtualenv with only ``pip install WHEEL`` in it, kept in .venv/plain-install between runs."""
    python = PLAIN_VENV / "bin" / "python"
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    key = hashlib.sha256(config["options"]["install_requires"].encode()).hexdigest()
    marker = PLAIN_VENV / ".requirements"
    if not python.exists() or not marker.exists() or marker.read_text() != key:
        shutil.rmtree(PLAIN_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(PLAIN_VENV)], check=True, timeout=120)
        subprocess.run([str(python), "-m", "ensurepip", "--default-pip"], check=True, capture_output=True, timeout=300)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        marker.write_text(key)
    else:  # dependencies unchanged: reinstall our wheel only
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return python


def test_the_plain_install_crawls_the_demo_site_without_torch(wheel, demo_site, tmp_path):
    python = plain_venv(wheel)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONNOUSERSITE"] = "1"
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, env=env, timeout=60)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    where = subprocess.run([str(python), "-c", "import scrapy_captcha; print(scrapy_captcha.__file__)"],
                           capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert str(PLAIN_VENV) in where.stdout, where.stdout + where.stderr  # the installed copy, not the checkout

    site = demo_site(categories=2, items_per_category=8, solve_every=4)
    items = tmp_path / "items.jsonl"
    # example_project/ holds scrapy.cfg and the catalog package; scrapy_captcha comes from the wheel
    crawl = subprocess.run([str(python), "-m", "scrapy", "crawl", "catalog", "-a", f"base_url={site.url}", "-O", str(items),
                            "-s", "LOG_LEVEL=INFO", "-s", "ROBOTSTXT_OBEY=False"],
                           cwd=REPO / "example_project", capture_output=True, text=True, env=env, timeout=300)
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    scraped = [json.loads(line) for line in items.read_text().splitlines()]
    assert len(scraped) == site.options.categories * site.options.items_per_category, crawl.stderr[-3000:]
    assert site.stats["answers"] >= 4 and "'captcha/solved':" in crawl.stderr, crawl.stderr[-3000:]
    assert "torch" not in subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, env=env).stdout.lower()
