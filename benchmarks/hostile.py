"""Hostile pages (issue 10): detection time and memory, reactor lag, and what one stuck captcha costs.

- **Detection**: :func:`scrapy_captcha.detection.find_captcha` on N forms with a captcha-named
  field x N captcha-like images outside them (N = 250 .. 4000), a 5 MB listing page and a captcha
  nested 3,000 elements deep. Each case runs in a fresh process: the median time of a few calls,
  and the peak memory the first call added (the process's peak RSS, reset just before it, so
  lxml's allocations count too).
- **Reactor lag** (:mod:`benchmarks.reactor_lag`): a crawl with the middleware on fetches one such
  page while a 10 ms ``LoopingCall`` in the crawl records the reactor's longest stall.
- **Stuck captcha** (:mod:`benchmarks.stuck_captcha`): a few cookie sessions crawl their own
  products of the demo shop while one more session's captcha image never arrives: the time the
  other sessions' pages take with and without it.

``python -m benchmarks.hostile`` writes ``hostile.json`` and ``hostile.md``; ``python -m benchmarks``
runs it as its ``hostile`` section. ``--before REV`` measures detection and lag with
``scrapy_captcha/detection.py`` as it was at git revision REV, on the reactor thread as it ran then;
``--stuck-before REV`` measures the stuck captcha with that revision's ``scrapy_captcha`` package.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .machine import REPO, shell

HERE = Path(__file__).resolve().parent
LAG_TICK = 0.01  # seconds between the reactor probe's ticks


@dataclass(frozen=True)
class HostilePlan:
    """Sizes and repeats; :data:`QUICK` is the seconds-long smoke version."""

    sizes: tuple[int, ...] = (250, 500, 1000, 2000, 4000)
    big_page_mb: float = 5.0
    depth: int = 3000
    repeats: int = 5
    lag_pages: tuple[str, ...] = ("plain", "forms-1000", "forms-4000", "big")
    stuck_sessions: int = 3
    stuck_items: int = 24
    stuck_repeats: int = 5
    timeout: float = 300.0  # seconds for one measuring process


QUICK = HostilePlan(sizes=(50, 100), big_page_mb=0.5, depth=3000, repeats=1, lag_pages=("forms-100",),
                    stuck_sessions=2, stuck_items=4, stuck_repeats=1, timeout=120.0)


# -- the pages ---------------------------------------------------------------------------------


def forms_and_images(n: int) -> str:
    """N forms, each with a captcha-named field and no image, then N captcha-like images."""
    forms = "".join(f'<form action="/f{i}"><input name="captcha_{i}"></form>' for i in range(n))
    images = "".join(f'<img src="/captcha/{i}.png">' for i in range(n))
    return f"<!DOCTYPE html><html><body>{forms}{images}</body></html>"


def big_page(megabytes: float) -> str:
    """A long product listing with a search form and the word captcha in its text, and no captcha."""
    head = ('<!DOCTYPE html><html><body><p>This shop is protected by a captcha.</p>'
            '<form action="/search"><input name="q"><button>Search</button></form><ul>')
    rows, size, i = [], len(head), 0
    while size < megabytes * 1_000_000:
        row = (f'<li class="item"><img src="/img/{i}.jpg" alt="Product {i}" width="120" height="90">'
               f'<a href="/item/{i}">Product {i}</a> <span class="price">${i % 200}.99</span></li>')
        rows.append(row)
        size += len(row)
        i += 1
    return head + "".join(rows) + "</ul></body></html>"


def deep_captcha(depth: int) -> str:
    """The demo shop's captcha form inside ``depth`` nested ``<div>``s."""
    gate = ('<form method="post" action="/captcha/verify"><input type="hidden" name="csrf_token" value="t">'
            '<img id="captcha-image" src="/captcha/image" alt="captcha" width="160" height="60">'
            '<input type="text" name="answer"></form>')
    return f"<!DOCTYPE html><html><body>{'<div>' * depth}{gate}{'</div>' * depth}</body></html>"


def page_for(case: str, plan: HostilePlan) -> str:
    if case.startswith("forms-"):
        return forms_and_images(int(case.split("-", 1)[1]))
    if case == "big":
        return big_page(plan.big_page_mb)
    if case == "deep":
        return deep_captcha(plan.depth)
    if case == "plain":
        return "<!DOCTYPE html><html><body><h1>Catalogue</h1><p>Nothing to see.</p></body></html>"
    raise ValueError(f"unknown hostile page {case!r}")


def load_detection(before: str | None):
    """``scrapy_captcha.detection``, or its file at git revision ``before`` loaded as a module of its own."""
    if not before:
        from scrapy_captcha import detection

        return detection
    source = subprocess.run(["git", "show", f"{before}:scrapy_captcha/detection.py"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="detection-before-")) / "detection_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("detection_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- measuring processes -------------------------------------------------------------------------


def run_worker(module: str, args: list[str], timeout: float, cwd: Path = REPO) -> dict[str, Any]:
    """``python -m module args...`` from the repository root (or ``cwd``): the JSON on its last line, with the command."""
    argv = [sys.executable, "-m", module, *args]
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out_after_seconds": timeout, "command": shell(argv)}
    if done.returncode != 0:
        raise RuntimeError(f"{shell(argv)} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["command"] = shell(argv)
    return result


def _plan_args(plan: HostilePlan, before: str | None) -> list[str]:
    return ["--plan", json.dumps(asdict(plan))] + (["--before", before] if before else [])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux); returns that RSS in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except (OSError, KeyError):  # elsewhere: ru_maxrss, which a child inherits from its parent
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss() -> int:
    try:
        return _status_kib("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def detect_in_process(case: str, plan: HostilePlan, before: str | None) -> dict[str, Any]:
    """(In the worker) time and peak memory of find_captcha on one page."""
    import gc

    from scrapy.http import HtmlResponse

    detection = load_detection(before)
    body = page_for(case, plan).encode("utf-8")
    seconds, found = [], None
    for run in range(plan.repeats):
        response = HtmlResponse("http://127.0.0.1/hostile", body=body, encoding="utf-8")
        gc.collect()
        rss_before = _reset_peak_rss()
        started = time.perf_counter()
        found = detection.find_captcha(response)
        seconds.append(time.perf_counter() - started)
        if run == 0:
            peak_kib = _peak_rss() - rss_before
        del response
    result = {"case": case, "page_bytes": len(body), "seconds": seconds, "median_seconds": statistics.median(seconds),
              "peak_added_mib": peak_kib / 1024, "found_captcha": found is not None}
    if hasattr(detection, "MAX_FORMS"):  # the same without the caps on work per page: is it linear?
        uncapped = []
        for _ in range(plan.repeats):
            response = HtmlResponse("http://127.0.0.1/hostile", body=body, encoding="utf-8")
            started = time.perf_counter()
            detection.find_captcha(response, max_forms=sys.maxsize, max_images=sys.maxsize)
            uncapped.append(time.perf_counter() - started)
        result["median_seconds_uncapped"] = statistics.median(uncapped)
    return result


def measure_detection(plan: HostilePlan, before: str | None = None) -> list[dict[str, Any]]:
    cases = [f"forms-{n}" for n in plan.sizes] + ["big", "deep"]
    results = []
    for case in cases:
        print(f"   detection {case}{' (before)' if before else ''}", flush=True)
        result = run_worker("benchmarks.hostile", ["_detect", case, *_plan_args(plan, before)], plan.timeout)
        result["case"] = case
        results.append(result)
    return results


# -- all of it -----------------------------------------------------------------------------------


PARTS = ("detection", "lag", "stuck")


def _lag(plan: HostilePlan, before: str | None) -> list[dict[str, Any]]:
    from .reactor_lag import measure_lag

    return measure_lag(plan, before)


def run_all(plan: HostilePlan, before: str | None = None, parts: tuple[str, ...] = PARTS,
            stuck_before: str | None = None) -> dict[str, Any]:
    """The hostile figures of ``parts``; with ``before``, detection and lag with that revision's detection.py too;
    with ``stuck_before``, the stuck captcha with that revision's middleware too."""
    results: dict[str, Any] = {"plan": asdict(plan), "detection": [], "lag": []}
    if "detection" in parts:
        results["detection"] = measure_detection(plan)
    if "lag" in parts:
        results["lag"] = _lag(plan, None)
    if before:  # the old code is quadratic: one call per page, nothing above 2000 forms (4000 took over 5 minutes)
        old = replace(plan, repeats=1, sizes=tuple(n for n in plan.sizes if n <= 2000),
                      lag_pages=tuple(case for case in plan.lag_pages if case != "forms-4000"))
        results["before"] = {"revision": before, "repeats": 1,
                             "detection": measure_detection(old, before) if "detection" in parts else [],
                             "lag": _lag(old, before) if "lag" in parts else []}
    if "stuck" in parts:
        from .stuck_captcha import measure_stuck

        results["stuck"] = measure_stuck(plan.stuck_sessions, plan.stuck_items, plan.stuck_repeats, plan.timeout)
        if stuck_before:
            from .stuck_captcha import export_tree

            tree = export_tree(stuck_before)
            results["stuck_before"] = {"revision": stuck_before, **measure_stuck(
                plan.stuck_sessions, plan.stuck_items, plan.stuck_repeats, plan.timeout, tree)}
    return results


def _seconds(entry: dict[str, Any] | None, key: str) -> str:
    if not entry:
        return "-"
    if "timed_out_after_seconds" in entry:
        return f"> {entry['timed_out_after_seconds']:.0f} s (stopped)"
    value = entry.get(key)
    return "-" if value is None else f"{value:.3f} s"


def _mib(entry: dict[str, Any] | None) -> str:
    return "-" if not entry or entry.get("peak_added_mib") is None else f"{entry['peak_added_mib']:.0f} MiB"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def render(results: dict[str, Any]) -> str:
    """The hostile figures as markdown: ``results`` is hostile.json, or results.json with a ``hostile`` key."""
    hostile = results.get("hostile", results)
    if not isinstance(hostile, dict) or "plan" not in hostile:
        return ""
    plan, before = hostile["plan"], hostile.get("before") or {}
    names = {"big": f"{plan['big_page_mb']:g} MB listing page", "deep": f"captcha nested {plan['depth']} deep", "plain": "a small page"}

    def name(case: str) -> str:
        n = case.removeprefix("forms-")
        return names.get(case, f"{n} forms x {n} images")

    lines: list[str] = []
    if hostile.get("detection"):
        old = {entry["case"]: entry for entry in before.get("detection", [])}
        header = ["Page", "Size", "Time", "Time without the caps", "Peak memory added", "Captcha found"]
        rows = []
        for entry in hostile["detection"]:
            row = [name(entry["case"]), f"{entry.get('page_bytes', 0) / 1e6:.2f} MB", _seconds(entry, "median_seconds"),
                   _seconds(entry, "median_seconds_uncapped"), _mib(entry),
                   {True: "yes", False: "no"}.get(entry.get("found_captcha"), "-")]
            if before:
                row[2:2] = [_seconds(old.get(entry["case"]), "median_seconds"), _mib(old.get(entry["case"]))]
            rows.append(row)
        if before:
            header[2:2] = ["Time before", "Memory before"]
        lines += [f"find_captcha, median of {plan['repeats']} calls, each page in a fresh process; peak memory the first "
                  "call added (peak RSS)." + (f" Before: scrapy_captcha/detection.py at {before['revision']}, one call."
                                               if before else ""), "", *_table(header, rows), ""]
    if hostile.get("lag"):
        old = {entry["case"]: entry for entry in before.get("lag", [])}
        rows = [[name(e["case"]), _seconds(e, "max_lag_seconds")] + ([_seconds(old.get(e["case"]), "max_lag_seconds")] if before else [])
                for e in hostile["lag"]]
        lines += [f"Reactor lag: the longest stall of a {LAG_TICK * 1000:g} ms LoopingCall while a crawl (middleware on) "
                  "fetches the page.", "", *_table(["Page", "Longest stall"] + (["Before"] if before else []), rows), ""]
    stuck = hostile.get("stuck")
    if stuck:
        ratio = "-" if stuck["ratio"] is None else f"{stuck['ratio']:.2f}x"
        expected = plan["stuck_sessions"] * plan["stuck_items"]
        old = hostile.get("stuck_before")
        rows = [[label, _seconds(figures, f"other_sessions_seconds_{key}"),
                 ", ".join(f"{n}/{expected}" for n in figures.get("other_pages_reached", {}).get(key, [])) or "-",
                 _seconds(figures.get("crawl_seconds"), key)]
                for figures, at in ((stuck, ""), *([(old, f", scrapy_captcha at {old['revision']}")] if old else []))
                for label, key in ((f"without the stuck session{at}", "without"), (f"with it{at}", "with"))]
        if old and old.get("ratio"):
            ratio += f" (before, at {old['revision']}: {old['ratio']:.1f}x)"
        lines += [f"One stuck captcha: {plan['stuck_sessions']} sessions x {plan['stuck_items']} products, plus one session "
                  "whose captcha image never arrives; DOWNLOAD_TIMEOUT=1, no retries, CONCURRENT_REQUESTS=8; medians of "
                  f"{len(stuck['runs']['with'])} crawls each, alternating. Other sessions' time: from the first request to "
                  f"their last page, as the site saw it; with the stuck session it is {ratio} the time without.", "",
                  *_table(["Crawl", "Other sessions' time", "Their pages reached, each run", "Whole crawl"], rows), ""]
    return "\n".join(lines).rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all", help=argparse.SUPPRESS)
    parser.add_argument("target", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--before", metavar="REV", help="also measure detection and lag with detection.py at git revision REV")
    parser.add_argument("--stuck-before", metavar="REV",
                        help="also measure the stuck captcha with the scrapy_captcha package of git revision REV")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated parts to measure (default: {','.join(PARTS)})")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke version (figures meaningless)")
    parser.add_argument("--out", type=Path, default=HERE, help="where hostile.json and hostile.md go (default: benchmarks/)")
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = HostilePlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.plan).items()}) if args.plan \
        else QUICK if args.quick else HostilePlan()
    if args.what == "_detect":
        print(json.dumps(detect_in_process(args.target, plan, args.before)))
    elif args.what == "all":
        from .machine import describe

        results = {"command": shell([sys.executable, "-m", "benchmarks.hostile", *(argv if argv is not None else sys.argv[1:])]),
                   "machine": describe(), "quick": args.quick,
                   **run_all(plan, args.before, tuple(p for p in args.parts.split(",") if p), args.stuck_before)}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hostile.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        machine = results["machine"]
        markdown = (f"# Hostile pages\n\nCommand: `{results['command']}`  \nMachine: {machine['cpu']}, {machine['cores']} cores, "
                    f"commit {machine['commit']}, {machine['date']}; load average (1, 5, 15 min) at the start: "
                    f"{machine['load_average_at_start']}\n\n{render(results)}\n")
        (args.out / "hostile.md").write_text(markdown, encoding="utf-8")
        print(markdown)
    else:
        parser.error(f"unknown argument {args.what!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
