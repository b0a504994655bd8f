"""The light crawl worker (issue 11): the onnx solver, the torch solver and ddddocr side by side.

Figures, each with the command or function that measures it:

- installed size of the plain install (``pip install`` of the wheel into a fresh venv, the one
  ``tests/test_packaging.py`` keeps in ``.venv/plain-install``) beside the trainer install;
- peak RSS of a crawl worker: the example spider crawling the demo site with the site asking for a
  captcha on every page (100+ captchas solved), the onnx backend from the plain venv (no torch
  installed) and the torch backend (``CAPTCHA_BACKEND = "torch"``); and of a bare process that
  imports Scrapy, loads the model and solves 100 images (onnx, torch, ddddocr alike);
- model load time and latency at batch 1 on one thread, bytes -> text (medians, in rounds);
- identical answers of the two backends on the benchmark's test set;
- micro-batching: threads solving at once, with and without the solver's batch window.

``python -m benchmarks.worker`` runs it alone; ``python -m benchmarks`` runs it as the ``worker``
section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLAIN_VENV = REPO / ".venv" / "plain-install"
#: A fresh venv's own packages, left out of an install's size.
VENV_OWN = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")


# -- sizes -------------------------------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def installed_size(venv: Path) -> dict[str, Any]:
    """Bytes in ``venv``'s site-packages, without the venv's own pip and setuptools; the largest packages."""
    [site] = list((venv / "lib").glob("python3*/site-packages"))
    sizes = {}
    for entry in site.iterdir():
        own = entry.name.split("-")[0] in VENV_OWN or entry.name in VENV_OWN
        if not own:
            sizes[entry.name] = tree_bytes(entry) if entry.is_dir() else entry.stat().st_size
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    return {"venv": str(venv.relative_to(REPO)) if venv.is_relative_to(REPO) else str(venv),
            "bytes": sum(sizes.values()), "largest": [{"name": k, "bytes": v} for k, v in largest]}


# -- the crawl worker --------------------------------------------------------------------------


def crawl_worker(python: Path, backend: str, categories: int = 4, items: int = 24, timeout: float = 600,
                 weights: str | None = None, style: str = "captcha") -> dict[str, Any]:
    """Crawl a demo site that asks for a captcha on every page, in ``python``; peak RSS and counts.

    ``weights``: ``CAPTCHA_WEIGHTS`` for the crawl (default: the middleware's, the route ``"auto"``);
    ``style``: how the site draws its captchas (``example_project.demo_captchas.CAPTCHA_STYLES``)."""
    from example_project.demo_site import DemoSite, SiteOptions

    options = SiteOptions(categories=categories, items_per_category=items, page_size=8, solve_every=1, style=style)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONNOUSERSITE"] = "1"
    with DemoSite(options) as site:
        argv = [str(python), str(HERE / "worker.py"), "--child", site.url, "--backend", backend,
                *(["--weights", weights] if weights else [])]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO / "example_project", env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        report["pages_expected"] = len(site.expected_pages())
        report["answers_sent"] = site.stats["answers"]
    report["command"] = f"(cd example_project && {python.relative_to(REPO) if python.is_relative_to(REPO) else python} " \
                        f"../benchmarks/worker.py --child URL --backend {backend}" + (f" --weights {weights})" if weights else ")")
    return report


def _child(url: str, backend: str, weights: str | None = None) -> int:
    """The crawl worker itself: the example project as `scrapy crawl catalog` runs it, then its peak RSS."""
    sys.path.insert(0, os.getcwd())  # example_project/: the catalog package, as `scrapy crawl` finds it
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from catalog.spiders.catalog import CatalogSpider

    settings = Settings()
    settings.setmodule("catalog.settings", priority="project")
    settings.setdict({"LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": False, "CAPTCHA_BACKEND": backend}, priority="cmdline")
    if weights:
        settings.set("CAPTCHA_WEIGHTS", weights, priority="cmdline")
    process = CrawlerProcess(settings, install_root_handler=True)
    crawler = process.create_crawler(CatalogSpider)
    process.crawl(crawler, base_url=url)
    process.start()
    stats = crawler.stats.get_stats()
    import scrapy_captcha

    print(json.dumps({
        "backend": backend, "peak_rss_mib": _peak_rss_mib(), "torch_imported": "torch" in sys.modules,
        "scrapy_captcha": os.path.dirname(scrapy_captcha.__file__),
        "items": stats.get("item_scraped_count", 0), "solved": stats.get("captcha/solved", 0),
        "detected": stats.get("captcha/detected", 0), "gave_up": stats.get("captcha/gave_up", 0),
        "elapsed_seconds": stats.get("elapsed_time_seconds"),
    }))
    return 0


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- in-process figures ------------------------------------------------------------------------


class SolverContender:
    """scrapy_captcha's Solver with one backend, behind the benchmarks' contender interface."""

    batch_api = True

    def __init__(self, backend: str, weights: Path | None = None, key: str | None = None):
        from scrapy_captcha import Solver

        self.key, self.label, self.backend, self.weights = key or f"{backend}-solver", f"scrapy-captcha, {backend} backend", backend, weights
        self.solver = Solver.from_path(weights, backend=backend, threads=1)
        self.path = self.solver.backend.path

    def set_threads(self, threads: int) -> None:
        if self.backend == "torch":
            import torch

            torch.set_num_threads(threads)
        else:
            from scrapy_captcha import Solver

            self.solver = Solver.from_path(self.weights, backend="onnx", threads=threads)

    def solve(self, image: bytes) -> str:
        return self.solver.solve(image).text

    def solve_batch(self, images: Sequence[bytes]) -> list[str]:
        return [p.text for p in self.solver.solve_batch(images)]


def agreement(images: Sequence[bytes], batch_size: int = 64) -> dict[str, Any]:
    """The two backends' answers on ``images``: how many are identical, and the largest confidence gap."""
    from scrapy_captcha import Solver

    onnx, torch_ = Solver.from_path(backend="onnx"), Solver.from_path(backend="torch")
    same, gap, differing = 0, 0.0, []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        for index, (a, b) in enumerate(zip(onnx.solve_batch(chunk), torch_.solve_batch(chunk))):
            same += a.text == b.text
            gap = max(gap, abs(a.confidence - b.confidence))
            if a.text != b.text:
                differing.append({"index": start + index, "onnx": a.text, "torch": b.text})
    return {"images": len(images), "identical": same, "max_confidence_gap": gap, "differing": differing[:20]}


def micro_batching(images: Sequence[bytes], threads: int = 8, per_thread: int = 25, window: float = 0.002,
                   repeats: int = 3) -> dict[str, Any]:
    """``threads`` threads solving ``per_thread`` images each, at once: images per second and batch sizes,
    with the solver's batch window and without (medians of ``repeats``, alternating)."""
    from scrapy_captcha import Solver

    def once(solver) -> float:
        barrier = threading.Barrier(threads)

        def work(offset: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                solver.solve(images[(offset * per_thread + i) % len(images)])

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        began = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return threads * per_thread / (time.perf_counter() - began)

    out: dict[str, Any] = {"threads": threads, "images": threads * per_thread, "window_ms": window * 1000}
    rates: dict[str, list[float]] = {"off": [], "on": []}
    sizes: list[int] = []
    for _ in range(repeats):
        rates["off"].append(once(Solver.from_path(threads=1)))
        batched = Solver.from_path(threads=1, batch_window=window)
        rates["on"].append(once(batched))
        sizes += batched._batcher.batch_sizes
    out["images_per_second_off"] = statistics.median(rates["off"])
    out["images_per_second_on"] = statistics.median(rates["on"])
    out["mean_batch"] = statistics.fmean(sizes)
    out["largest_batch"] = max(sizes)
    return out


#: Calibration images for the int8 model: seed-style captchas our renderer draws (never the test set).
CALIBRATION_COMMAND = ["generate", "--count", "600", "--style", "mixed", "--seed", "4242", "--workers", "1"]


def calibration_images(folder: Path) -> Path:
    """``folder`` holding :data:`CALIBRATION_COMMAND`'s images, drawn first if it is missing or empty."""
    if not any(folder.glob("*.png")):
        from trainer.cli import main as trainer_main

        argv = [CALIBRATION_COMMAND[0], str(folder), *CALIBRATION_COMMAND[1:], "--force"]
        if trainer_main(argv) != 0:
            raise RuntimeError(f"could not draw the calibration images: python -m trainer {' '.join(argv)}")
    return folder


def int8_model(out: Path) -> dict[str, Any]:
    """The bundled model quantised to int8 (``python -m trainer export --int8``), calibrated on 300 of
    600 seed-style images our renderer draws (:data:`CALIBRATION_COMMAND`), never on the test set."""
    from trainer.export import export

    calibration = calibration_images(out.with_name("calibration-mixed"))
    began = time.perf_counter()
    export(None, out, int8=calibration)
    return {"path": str(out), "bytes": out.stat().st_size, "export_seconds": time.perf_counter() - began,
            "calibration": f"python -m trainer {CALIBRATION_COMMAND[0]} {calibration.relative_to(REPO)} {' '.join(CALIBRATION_COMMAND[1:])}",
            "command": f"python -m trainer export --out {out.relative_to(REPO)} --int8 {calibration.relative_to(REPO)}"}


def int8_agreement(int8_path: Path, images: Sequence[bytes], labels: Sequence[str]) -> dict[str, Any]:
    """Answers of the int8 model against the float onnx model on ``images``, and both models' accuracy."""
    from scrapy_captcha import Solver

    exact, fast = Solver.from_path(backend="onnx"), Solver.from_path(int8_path)
    a, b = [], []
    for start in range(0, len(images), 64):
        a += [p.text for p in exact.solve_batch(images[start:start + 64])]
        b += [p.text for p in fast.solve_batch(images[start:start + 64])]
    any_case = lambda texts: sum(t.lower() == l.lower() for t, l in zip(texts, labels)) / len(labels)  # noqa: E731
    exact_case = lambda texts: sum(t == l for t, l in zip(texts, labels)) / len(labels)  # noqa: E731
    return {"images": len(images), "identical": sum(x == y for x, y in zip(a, b)),
            "float_any_case": any_case(a), "int8_any_case": any_case(b), "float_exact": exact_case(a), "int8_exact": exact_case(b)}


def batch_cost(images: Sequence[bytes], sizes: Sequence[int] = (1, 2, 4, 8, 16), calls: int = 200) -> dict[str, float]:
    """Milliseconds per image of the onnx backend's forward pass alone, one thread, by batch size (medians)."""
    import numpy as np

    from scrapy_captcha import Solver
    from scrapy_captcha.image import to_array

    solver = Solver.from_path(backend="onnx", threads=1)
    arrays = [to_array(image, solver.config) for image in images[:16]]
    out = {}
    for size in sizes:
        batch = np.stack([arrays[i % len(arrays)] for i in range(size)])
        solver.backend.run(batch)
        values = []
        for _ in range(max(10, calls // size)):
            began = time.perf_counter()
            solver.backend.run(batch)
            values.append((time.perf_counter() - began) * 1000 / size)
        out[str(size)] = statistics.median(values)
    return out


def model_load_ms(backend: str, repeats: int = 5) -> float:
    """Median milliseconds of ``Solver.from_path(backend=...)`` for the bundled model, libraries already imported."""
    from scrapy_captcha import Solver

    Solver.from_path(backend=backend)
    values = []
    for _ in range(repeats):
        began = time.perf_counter()
        Solver.from_path(backend=backend)
        values.append((time.perf_counter() - began) * 1000)
    return statistics.median(values)


# -- the section -------------------------------------------------------------------------------


def run_all(test_folder: Path, images: Sequence[bytes], quick: bool = False) -> dict[str, Any]:
    from . import memory, speed
    from .contenders import load_ddddocr

    result: dict[str, Any] = {}
    if PLAIN_VENV.exists():
        result["installed_plain"] = installed_size(PLAIN_VENV)
    result["installed_trainer"] = installed_size(Path(sys.prefix))  # this interpreter's venv: .[trainer,test]
    count = 10 if quick else 100
    result["process"] = {kind: memory.measure(kind, test_folder, count, scrapy=True) for kind in ("onnx", "torch", "ddddocr")
                         if kind != "ddddocr" or load_ddddocr()[0] is not None}
    result["load_ms"] = {backend: model_load_ms(backend) for backend in ("onnx", "torch")}
    size = (1, 6) if quick else (4, 24)
    workers = {"torch (.venv)": (Path(sys.executable), "torch"), "onnx (.venv)": (Path(sys.executable), "onnx")}
    if (PLAIN_VENV / "bin" / "python").exists():
        workers["onnx (plain install)"] = (PLAIN_VENV / "bin" / "python", "onnx")
    result["crawl_worker"] = {label: crawl_worker(python, backend, *size) for label, (python, backend) in workers.items()}
    contenders = [SolverContender("onnx"), SolverContender("torch")]
    if not quick:
        int8 = HERE / "data" / "worker-int8.onnx"
        result["int8"] = int8_model(int8)
        contenders.append(SolverContender("onnx", int8, key="onnx-int8-solver"))
    ddddocr, why = load_ddddocr()
    if ddddocr is not None:
        contenders.append(ddddocr)
    else:
        result["ddddocr"] = why
    calls = 12 if quick else 300
    result["latency"] = speed.latency(contenders, list(images), 1, calls=calls, rounds=2 if quick else 5)
    result["agreement"] = agreement(images)
    if "int8" in result:
        labels = [p.stem.split("-", 1)[1] for p in sorted(test_folder.glob("*.png"), key=lambda p: int(p.stem.split("-", 1)[0]))]
        result["int8"].update(int8_agreement(Path(result["int8"]["path"]), images, labels))
    result["batch_cost_ms"] = batch_cost(images, calls=20 if quick else 200)
    result["micro_batching"] = micro_batching(images, per_thread=3 if quick else 25, repeats=1 if quick else 3)
    return result


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def worker_table(result: dict[str, Any]) -> str:
    """The section's figures as Markdown, goals beside them."""
    lines = ["| figure | onnx solver | torch solver | ddddocr | goal |", "|---|---|---|---|---|"]
    process = result.get("process", {})
    crawl = result.get("crawl_worker", {})
    plain = crawl.get("onnx (plain install)") or crawl.get("onnx (.venv)") or {}
    torch_crawl = crawl.get("torch (.venv)", {})
    lines.append(f"| peak RSS, crawl worker solving {plain.get('solved', '?')} / {torch_crawl.get('solved', '?')} captchas "
                 f"| {_mib(plain.get('peak_rss_mib'))} | {_mib(torch_crawl.get('peak_rss_mib'))} | - | <= 150 MiB |")
    solved = next((p.get("solved") for p in process.values()), "?")
    lines.append(f"| peak RSS, Scrapy imported + model + {solved} images solved | "
                 + " | ".join(_mib(process.get(k, {}).get("peak_rss_mib")) for k in ("onnx", "torch", "ddddocr")) + " | <= 150 MiB |")
    latency = result.get("latency", {})
    ms = {k: latency.get(k, {}).get("median_ms") for k in ("onnx-solver", "torch-solver", "ddddocr")}
    lines.append("| latency, batch 1, 1 thread, PNG bytes -> text (median) | "
                 + " | ".join("-" if v is None else f"{v:.2f} ms" for v in ms.values()) + " | <= 1 ms |")
    load = result.get("load_ms", {})
    lines.append(f"| model load (libraries imported) | {load.get('onnx', float('nan')):.0f} ms | {load.get('torch', float('nan')):.0f} ms "
                 f"| {process.get('ddddocr', {}).get('load_ms') or float('nan'):.0f} ms | <= 100 ms |")
    lines.append("| imports (Scrapy + solver libraries), fresh process | "
                 + " | ".join("-" if k not in process else f"{process[k]['import_s']:.2f} s" for k in ("onnx", "torch", "ddddocr")) + " | |")
    if "installed_plain" in result:
        lines.append(f"| installed size | {result['installed_plain']['bytes'] / 1e6:.0f} MB (plain install) "
                     f"| {result['installed_trainer']['bytes'] / 1e6:.0f} MB (.[trainer,test]) | - | <= 300 MB |")
    agreement = result.get("agreement")
    if agreement:
        lines.append(f"| identical answers, onnx vs torch | {agreement['identical']} / {agreement['images']} "
                     f"(confidences within {agreement['max_confidence_gap']:.1e}) | | | all |")
    batching = result.get("micro_batching")
    if batching:
        lines.append(f"| {batching['threads']} threads solving at once, images/s (window off -> {batching['window_ms']:g} ms) "
                     f"| {batching['images_per_second_off']:.0f} -> {batching['images_per_second_on']:.0f} "
                     f"(mean batch {batching['mean_batch']:.1f}) | | | |")
    int8 = result.get("int8")
    if int8 and "identical" in int8:
        lines.append(f"| opt-in int8 model (`export --int8`): latency; same answers as float on the test images; any case float -> int8 "
                     f"| {latency.get('onnx-int8-solver', {}).get('median_ms', float('nan')):.2f} ms; {int8['identical']} / {int8['images']}; "
                     f"{int8['float_any_case']:.1%} -> {int8['int8_any_case']:.1%} | | | |")
    cost = result.get("batch_cost_ms")
    if cost:
        lines.append("| onnx forward pass per image, 1 thread, by batch size | "
                     + ", ".join(f"{size}: {ms:.2f} ms" for size, ms in cost.items()) + " | | | |")
    return "\n".join(lines)


def model_crawls(repeats: int = 2) -> dict[str, Any]:
    """Peak RSS of the plain install's crawl worker with each bundled model and the route, on a site
    drawn in the ``captcha`` library's style and on one in a style no model saw (``night``)."""
    python = PLAIN_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"no {python}: `make test` (tests/test_packaging.py) builds the plain install")
    rows: dict[str, Any] = {}
    for style in ("captcha", "night"):
        for weights in ("auto", "default", "generalist"):
            runs = [crawl_worker(python, "onnx", weights=weights, style=style) for _ in range(repeats)]
            rows[f"{weights} on {style}"] = {"peak_rss_mib": [round(r["peak_rss_mib"], 1) for r in runs],
                                             "solved": [r["solved"] for r in runs], "detected": [r["detected"] for r in runs]}
            print(f"{weights:>10} on {style:<8}: peak RSS {rows[f'{weights} on {style}']['peak_rss_mib']} MiB, "
                  f"solved {[r['solved'] for r in runs]} of {[r['detected'] for r in runs]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=2000, help="test images (default: 2000, the benchmark's set)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=HERE / "data" / "worker.json", help="where the figures go as JSON")
    parser.add_argument("--models", action="store_true",
                        help="only the crawl worker's peak RSS with the route 'auto', 'default' and 'generalist', on a "
                             "site in the captcha library's style and one in a style no model saw (two crawls each)")
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.backend, args.weights)
    if args.models:
        from .machine import describe

        rows = {"machine": describe(), "crawls": model_crawls()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0
    from .recognition import ensure_test_set

    folder = HERE / "data" / ("test-0.7.1-quick" if args.quick else "test-0.7.1")
    test = ensure_test_set(folder, 24 if args.quick else args.count, 4)
    result = run_all(folder, test.images, args.quick)
    result["load_average"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(worker_table(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # also run as a file (benchmarks/worker.py --child) by the crawl worker's interpreter
    sys.exit(main())
