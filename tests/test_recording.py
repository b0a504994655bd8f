"""Recording (CAPTCHA_HARVEST_DIR): verdicts in real crawls of the demo site, crash safety, concurrent writers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import scrapy
from PIL import Image
from scrapy.crawler import CrawlerRunner
from scrapy.utils.test import get_crawler

from scrapy_captcha.codec import SEED_ALPHABET
from scrapy_captcha.errors import CaptchaSettingsError
from scrapy_captcha.middleware import PRIORITY
from scrapy_captcha.recording import (
    ACCEPTED, ATTEMPTS_FILE, FORM_REFUSED, NOT_SUBMITTED, RECORDS_DIR, REJECTED, Recorder, RecordingFull, read_attempts,
)
from scrapy_captcha.settings import read_settings
from trainer.data import scan_folder
from scrapy_captcha.codec import Codec

SMALL = {"categories": 1, "items_per_category": 4, "page_size": 4}  # home, one listing, 4 products


class Pages(scrapy.Spider):
    """Home -> listing -> products; failures are kept, not raised."""

    name = "pages"

    def __init__(self, base_url: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.base_url, self.failures = base_url, []

    async def start(self):
        yield scrapy.Request(self.base_url + "/", errback=self.failed)

    def parse(self, response):
        for href in response.css("a.category::attr(href), a.product::attr(href)").getall():
            yield scrapy.Request(response.urljoin(href), errback=self.failed)

    def failed(self, failure):
        self.failures.append(failure)


async def crawl(site, folder: Path, **settings: Any) -> dict[str, Any]:
    runner = CrawlerRunner({
        "DOWNLOADER_MIDDLEWARES": {"scrapy_captcha.CaptchaMiddleware": PRIORITY}, "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False, "LOG_LEVEL": "WARNING", "CAPTCHA_ANSWER_CASE": "lower",
        "CAPTCHA_HARVEST_DIR": str(folder), "CONCURRENT_REQUESTS_PER_DOMAIN": 1, **settings,
    })
    crawler = runner.create_crawler(Pages)
    await runner.crawl(crawler, base_url=site.url)
    return crawler.stats.get_stats()


def watch_answers(site) -> list[tuple[str | None, str, bool]]:
    """Log (expected, submitted, correct) for every answer the site checks."""
    seen: list[tuple[str | None, str, bool]] = []
    check = site.check_answer

    def checking(session, answer):
        expected = session.answer
        correct = check(session, answer)
        seen.append((expected, answer, correct))
        return correct

    site.check_answer = checking
    return seen


def assert_intact(folder: Path) -> list:
    """Every record points at a whole PNG; nothing half-written sits under a final name."""
    attempts = read_attempts(folder)
    for line in (folder / RECORDS_DIR / ATTEMPTS_FILE).read_text().splitlines():
        json.loads(line)  # no torn line
    for path in folder.rglob("*.png"):
        if not path.name.startswith("."):
            with Image.open(path) as image:
                image.load()  # a truncated PNG raises here
    return attempts


@pytest_twisted.ensureDeferred
async def test_accepted_answers_are_recorded_with_the_sites_verdict(demo_site, tmp_path):
    site = demo_site(solve_every=3, **SMALL)
    answers = watch_answers(site)
    stats = await crawl(site, tmp_path)
    attempts = assert_intact(tmp_path)
    assert stats["captcha/solved"] >= 2 and stats["captcha/recording/recorded"] == len(attempts) == len(answers)
    by_verdict = Counter(a.verdict for a in attempts)
    assert by_verdict[ACCEPTED] == sum(correct for _, _, correct in answers)
    assert by_verdict[REJECTED] == sum(not correct for _, _, correct in answers)
    assert Counter(a.answer for a in attempts if a.verdict == ACCEPTED) == Counter(given for _, given, ok in answers if ok)
    for attempt in attempts:
        assert attempt.url.startswith(site.url) and 0 < attempt.confidence <= 1 and attempt.time.endswith("+00:00")
        if attempt.verdict == ACCEPTED:
            assert attempt.file == f"{attempt.file.split('-')[0]}-{attempt.answer}.png"
    # the accepted images are a training folder as they are: records and other verdicts stay out of it
    labelled = scan_folder(tmp_path, Codec(SEED_ALPHABET + "lo"), 8)  # answers folded to lower case may hold l and o
    assert sorted(label for _, label in labelled) == sorted(a.answer for a in attempts if a.verdict == ACCEPTED)


@pytest_twisted.ensureDeferred
async def test_rejected_answers_are_recorded_as_rejected(demo_site, tmp_path):
    site = demo_site(always_reject=True, **SMALL)
    answers = watch_answers(site)
    await crawl(site, tmp_path, CAPTCHA_MAX_ATTEMPTS=3)
    attempts = assert_intact(tmp_path)
    assert len(attempts) == len(answers) == 3
    assert [a.verdict for a in attempts] == [REJECTED] * 3
    assert [a.answer for a in attempts] == [given for _, given, _ in answers]
    assert all(a.file.startswith("rejected/") for a in attempts)


@pytest_twisted.ensureDeferred
async def test_low_confidence_images_are_recorded_as_not_submitted(demo_site, tmp_path):
    site = demo_site(**SMALL)
    await crawl(site, tmp_path, CAPTCHA_MIN_CONFIDENCE=1.0, CAPTCHA_MAX_ATTEMPTS=2)
    attempts = assert_intact(tmp_path)
    assert site.stats["answers"] == 0 and len(attempts) == site.stats["images"] == 2
    assert all(a.verdict == NOT_SUBMITTED and a.answer is None and a.file.startswith("unanswered/") for a in attempts)
    assert all(a.reading and a.confidence < 1.0 for a in attempts)


@pytest_twisted.ensureDeferred
async def test_refused_forms_are_recorded_as_form_refused(demo_site, tmp_path):
    site = demo_site(**SMALL)
    await crawl(site, tmp_path, COOKIES_ENABLED=False, CAPTCHA_MAX_ATTEMPTS=2)  # no session: CSRF check fails
    attempts = assert_intact(tmp_path)
    assert site.stats["csrf_rejected"] == len(attempts) == 2
    assert all(a.verdict == FORM_REFUSED and a.answer == a.reading for a in attempts)


def png(size: tuple[int, int] = (160, 60), noise: bool = False) -> bytes:
    image = Image.effect_noise(size, 64).convert("L") if noise else Image.new("L", size, 255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_numbering_continues_after_existing_files_and_images_become_png(tmp_path):
    (tmp_path / "41-old.png").write_bytes(png())
    recorder = Recorder(tmp_path)
    gif = io.BytesIO()
    Image.new("L", (160, 60), 255).save(gif, "GIF")
    first = recorder.record(gif.getvalue(), ACCEPTED, "ab12", 0.9, "http://x/", answer="ab12")
    second = recorder.record(png(), REJECTED, "cd34", 0.5, "http://x/", answer="cd34")
    odd = recorder.record(png(), ACCEPTED, "a/b", 0.9, "http://x/", answer="a/b")  # not a file name
    assert [first.file, second.file, odd.file] == ["42-ab12.png", "rejected/43.png", "unanswered/44.png"]
    with Image.open(tmp_path / first.file) as image:
        assert image.format == "PNG"
    assert [a.verdict for a in read_attempts(tmp_path)] == [ACCEPTED, REJECTED, ACCEPTED]


def test_size_cap_stops_recording(tmp_path):
    image = png(noise=True)  # ~10 kB, so records (~200 bytes) hardly count
    recorder = Recorder(tmp_path, max_bytes=2 * len(image) + 1000)
    recorder.record(image, ACCEPTED, "ab12", 0.9, "http://x/", answer="ab12")
    recorder.record(image, ACCEPTED, "ab13", 0.9, "http://x/", answer="ab13")
    with pytest.raises(RecordingFull, match="cap"):
        recorder.record(image, ACCEPTED, "ab14", 0.9, "http://x/", answer="ab14")
    assert len(read_attempts(tmp_path)) == 2 and not (tmp_path / "2-ab14.png").exists()


@pytest.mark.parametrize("value", ["-1", "0", "lots"])
def test_bad_size_cap_setting_is_refused(tmp_path, value):
    crawler = get_crawler(settings_dict={"CAPTCHA_HARVEST_DIR": str(tmp_path), "CAPTCHA_HARVEST_MAX_MB": value})
    with pytest.raises(CaptchaSettingsError, match="CAPTCHA_HARVEST_MAX_MB"):
        read_settings(crawler.settings)


WRITER = textwrap.dedent("""
    import io, os, sys
    from PIL import Image
    from scrapy_captcha.recording import ACCEPTED, REJECTED, Recorder
    folder, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    buffer = io.BytesIO()
    Image.effect_noise((size, size), 64).convert("L").save(buffer, "PNG")  # noise: PNG cannot shrink it
    data = buffer.getvalue()
    recorder = Recorder(folder)
    print("ready", flush=True)
    for n in range(count):
        verdict = ACCEPTED if n % 2 else REJECTED
        recorder.record(data, verdict, f"p{os.getpid() % 1000}n{n}", 0.5, "http://site/", answer=f"p{os.getpid() % 1000}n{n}")
""")


def start_writer(folder: Path, count: int, size: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(count), str(size)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_two_processes_write_one_folder(tmp_path):
    writers = [start_writer(tmp_path, 40, 64), start_writer(tmp_path, 40, 64)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    attempts = assert_intact(tmp_path)
    assert len(attempts) == 80 and len({a.file for a in attempts}) == 80
    indexes = sorted(int(Path(a.file).name.split("-")[0].split(".")[0]) for a in attempts)
    assert indexes == list(range(80))  # one counter for both processes
    assert len({a.answer[:4] for a in attempts}) == 2  # both wrote


def test_a_process_killed_mid_write_leaves_no_half_image_or_record(tmp_path):
    kills = 0
    for round_ in range(6):
        writer = start_writer(tmp_path, 10_000, 300)  # ~90 kB per image: kills land inside writes
        time.sleep(0.05 + 0.03 * round_)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        kills += writer.returncode == -signal.SIGKILL
    assert kills == 6
    attempts = assert_intact(tmp_path)
    assert attempts, "the writers recorded nothing before being killed: the test proves nothing"
    recorded = {a.file for a in attempts}
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png") if not p.name.startswith(".")}
    assert len(on_disk - recorded) <= 6  # at most one image per kill waits without its record
    Recorder(tmp_path)  # a new writer starts cleanly after the crashes
    assert not os.path.exists(tmp_path / "0-None.png")


def test_a_confidence_is_recorded_rounded_down_so_a_reading_under_one_never_reads_one():
    from scrapy_captcha.recording import recorded_confidence

    assert recorded_confidence(0.9999996) == 0.999999 < 1.0
    assert recorded_confidence(1.0) == 1.0 and recorded_confidence(0.0) == 0.0
    assert recorded_confidence(0.1234567) == 0.123456
