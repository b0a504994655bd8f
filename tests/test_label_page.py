"""``python -m trainer label DIR`` in a real browser: Debian's Chromium driven by Selenium."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from example_project.demo_captchas import ALPHABET
from example_project.demo_styles import ribbon
from scrapy_captcha.recording import ACCEPTED, NOT_SUBMITTED, REJECTED, Recorder
from trainer.label import check_label, hand_labels_path, read_hand_labels, write_hand_label

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync")


@pytest.fixture
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"the labelling page test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
                    "apt-get install -y chromium chromium-driver (make system-packages does)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the labelling page test needs selenium: pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # never downloads a browser
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def folder(tmp_path):
    """A recording with 5 images to label (not submitted / rejected) and one accepted."""
    rng = random.Random(3)
    recorder = Recorder(tmp_path)
    for verdict in (ACCEPTED, NOT_SUBMITTED, REJECTED, NOT_SUBMITTED, REJECTED, NOT_SUBMITTED):
        text = "".join(rng.choice(ALPHABET) for _ in range(4))
        recorder.record(ribbon(text, rng), verdict, text.lower(), 0.3, "http://site/", None if verdict == NOT_SUBMITTED else text)
    return tmp_path


@pytest.fixture
def server(folder):
    process = subprocess.Popen([sys.executable, "-m", "trainer", "label", str(folder)], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
    assert match, f"no URL printed: {line!r}"
    yield process, match.group(1)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


def test_label_by_keyboard_each_label_saved_at_once_survives_a_killed_server(browser, server, folder):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    process, url = server
    items = json.loads(urllib.request.urlopen(url + "api/items").read())["items"]
    assert len(items) == 5 and all(item["name"].startswith(("rejected/", "unanswered/")) for item in items)
    assert [item["confidence"] for item in items] == sorted(item["confidence"] for item in items)  # most uncertain first

    browser.get(url)
    answer = browser.find_element(By.ID, "answer")
    progress = browser.find_element(By.ID, "progress")
    image = browser.find_element(By.ID, "captcha")

    def showing() -> str:
        return image.get_attribute("data-name") or ""

    wait_for(lambda: progress.text.startswith("0 of 5 labelled") and showing() == items[0]["name"])
    assert answer.get_attribute("value") == items[0]["guess"]  # pre-filled with the model's guess
    assert browser.execute_script("return document.activeElement.id") == "answer"  # typing goes straight in
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 160  # the image itself loaded

    answer.send_keys(Keys.CONTROL, "a")  # replace the guess
    answer.send_keys("Ab3x", Keys.ENTER)
    wait_for(lambda: read_hand_labels(folder) == {items[0]["name"]: "Ab3x"})  # on disk at once
    wait_for(lambda: showing() == items[1]["name"] and progress.text.startswith("1 of 5"))

    answer.send_keys(Keys.ESCAPE)  # skip
    wait_for(lambda: showing() == items[2]["name"])
    answer.send_keys(Keys.ENTER)  # accept the guess as it is
    wait_for(lambda: read_hand_labels(folder).get(items[2]["name"]) == items[2]["guess"])
    wait_for(lambda: showing() == items[3]["name"])

    answer.send_keys(Keys.CONTROL, "z")  # undo: the label goes, its image comes back
    wait_for(lambda: items[2]["name"] not in read_hand_labels(folder))
    wait_for(lambda: showing() == items[2]["name"] and progress.text.startswith("1 of 5"))

    answer.send_keys(Keys.CONTROL, "a")
    answer.send_keys("Q7rZ", Keys.ENTER)
    wait_for(lambda: read_hand_labels(folder).get(items[2]["name"]) == "Q7rZ")

    process.send_signal(signal.SIGKILL)  # a killed server loses nothing already typed
    process.wait(timeout=10)
    assert read_hand_labels(folder) == {items[0]["name"]: "Ab3x", items[2]["name"]: "Q7rZ"}
    assert not [p for p in hand_labels_path(folder).parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_labels_are_refused_with_a_reason(tmp_path):
    for bad in ("", "  ", "ab cd", "ab\tcd"):
        with pytest.raises(ValueError):
            check_label(bad)
    write_hand_label(tmp_path, "unanswered/1.png", " x7Y ")
    assert read_hand_labels(tmp_path) == {"unanswered/1.png": "x7Y"}
    write_hand_label(tmp_path, "unanswered/1.png", None)
    assert read_hand_labels(tmp_path) == {}


def test_label_refuses_a_folder_with_nothing_to_label(tmp_path):
    Recorder(tmp_path).record(ribbon("ab3x", random.Random(1)), ACCEPTED, "ab3x", 0.9, "http://site/", "ab3x")
    result = subprocess.run([sys.executable, "-m", "trainer", "label", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "nothing to label" in result.stderr
