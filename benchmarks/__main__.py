"""``python -m benchmarks``: every figure of the README's performance table, in one run.

Sections, in order: the test set (drawn once, then reused), training under one wall-clock budget
(the default CRNN recipe and the seed's VGG network), recognition on the test set, inference
speed, peak memory, the crawl, the unseen styles (captchas drawn by other packages, see
``benchmarks/unseen/``), hostile pages (``benchmarks/hostile.py``) and, with ``--adapt`` only (tens
of minutes), the crawl + adapt rounds curve (``benchmarks/adapt.py``). Results go to
``benchmarks/results.json`` and ``benchmarks/results.md``, rewritten after every section. About
17 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import crawl, hostile, training

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTIONS = ("training", "recognition", "speed", "memory", "crawl", "worker", "unseen", "hostile", "adapt", "ddddocr")


@dataclass(frozen=True)
class Profile:
    """How big each section is: the full run, or the seconds-long ``--quick`` smoke version."""

    minutes: float = 6.0
    count: int = 2000
    budget: training.Budget = field(default_factory=training.Budget)
    crawl: crawl.CrawlPlan = field(default_factory=crawl.CrawlPlan)
    latency_calls: int = 300
    latency_rounds: int = 5
    warmup: int = 5
    batch_size: int = 64
    batches: int = 5
    memory_images: int = 100
    unseen_count: int = 500  # images per held-out style (benchmarks/unseen/)
    hostile: hostile.HostilePlan = field(default_factory=hostile.HostilePlan)
    adapt: dict[str, Any] = field(default_factory=dict)  # benchmarks.adapt options; empty: its defaults


QUICK = Profile(
    minutes=0.03,
    count=24,
    budget=training.Budget(0.03, steps_per_epoch=2, batch_size=8, val_size=16, workers=0),
    crawl=crawl.CrawlPlan(categories=2, items_per_category=6, page_size=3, solve_every=4,
                          concurrency=(("Scrapy defaults (16, 8 per domain)", 16, 8),), repeats=1),
    latency_calls=6, latency_rounds=2, warmup=1, batch_size=8, batches=1, memory_images=10, unseen_count=8,
    hostile=hostile.QUICK, adapt={"rounds": 1, "adapt_steps": 2, "categories": 1, "items": 4, "hand_labels": 4,
                                         "max_attempts": 10},
)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, Profile]:
    full = Profile()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, help=f"training budget per model, in minutes (default: {full.minutes:g})")
    parser.add_argument("--count", type=int, help=f"test images (default: {full.count})")
    parser.add_argument("--test-seed", type=int, default=4, help="seed of the test set's labels (default: 4)")
    parser.add_argument("--solve-every", type=int, help=f"demo site: a new captcha every N pages (default: {full.crawl.solve_every})")
    parser.add_argument("--crawl-repeats", type=int,
                        help=f"crawls per gate and concurrency level, alternating; the median is reported (default: {full.crawl.repeats})")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {','.join(SECTIONS)}")
    parser.add_argument("--adapt", action="store_true",
                        help="also run the adapt section (benchmarks/adapt.py's default scenarios; tens of minutes on 2 cores)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke version with tiny sizes (figures meaningless)")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md and results.json go (default: benchmarks/)")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data",
                        help="test set and training runs (default: benchmarks/data, reused between runs)")
    args = parser.parse_args(argv)
    args.out, args.data_dir = args.out.resolve(), args.data_dir.resolve()  # subprocesses run from the repository root
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) in --skip: {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    profile = QUICK if args.quick else full
    if args.minutes is not None:
        profile = replace(profile, minutes=args.minutes, budget=replace(profile.budget, minutes=args.minutes))
    if args.count is not None:
        profile = replace(profile, count=args.count)
    for option, name in ((args.solve_every, "solve_every"), (args.crawl_repeats, "repeats")):
        if option is not None:
            profile = replace(profile, crawl=replace(profile.crawl, **{name: option}))
    return args, profile


class Run:
    """The results being built, written out after every section so a failure keeps what was measured."""

    def __init__(self, args: argparse.Namespace, argv: list[str], profile: Profile):
        from .machine import describe

        self.args = args
        self.began = time.monotonic()
        self.results: dict[str, Any] = {
            "command": " ".join(["python -m benchmarks", *map(shlex.quote, argv)]),
            "machine": describe(),
            "quick": args.quick,
            "settings": {"training_budget": asdict(profile.budget), "crawl": crawl.plan_dict(profile.crawl),
                         "test_count": profile.count, "test_seed": args.test_seed, "skip": sorted(args.skip)},
            "models": {},
            "notes": [],
            "sections": {},
        }

    def note(self, text: str) -> None:
        print(f"note: {text}", flush=True)
        self.results["notes"].append(text)

    def done(self, name: str) -> bool:
        return self.results["sections"].get(name, {}).get("status") == "done"

    def section(self, name: str, work: Callable[[], Any], skip_why: str | None = None) -> None:
        if name in self.args.skip or skip_why:
            self.results["sections"][name] = {"status": "skipped", "why": f"--skip {name}" if name in self.args.skip else skip_why}
            print(f"== {name}: skipped", flush=True)
            return
        print(f"== {name}", flush=True)
        began = time.monotonic()
        try:
            self.results[name] = work()
            status = {"status": "done"}
        except Exception as exc:  # a failed section is reported, and the other sections still run
            traceback.print_exc()
            status = {"status": "failed", "why": f"{type(exc).__name__}: {exc}"[:2000]}
        status["minutes"] = (time.monotonic() - began) / 60
        self.results["sections"][name] = status
        print(f"== {name}: {status['status']} in {status['minutes']:.1f} min", flush=True)
        self.write()

    def write(self) -> None:
        from .report import ratios

        self.results["ratios"] = ratios(self.results)
        self.results["total_minutes"] = (time.monotonic() - self.began) / 60
        self.results["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.results = write_results_files(self.args.out, self.results)


def write_results_files(out: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Write ``out/results.json`` and ``out/results.md`` (paths inside the repository made relative
    to it); returns the results as written."""
    from .report import render_markdown

    out.mkdir(parents=True, exist_ok=True)
    results = repo_relative(results)
    _write_atomic(out / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    _write_atomic(out / "results.md", render_markdown(results))
    return results


def repo_relative(value: Any) -> Any:
    """``value`` with every path inside the repository written relative to it (results are shared)."""
    if isinstance(value, dict):
        return {key: repo_relative(item) for key, item in value.items()}
    if isinstance(value, list):
        return [repo_relative(item) for item in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return value.replace(f"{REPO}/", "")
    return value


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- the sections ------------------------------------------------------------------------------


def train_all(runs_dir: Path, budget: training.Budget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for recipe in training.RECIPES:
        print(f"   training {recipe.label} for {budget.minutes:g} min", flush=True)
        out[recipe.key] = training.train(recipe, runs_dir / recipe.key, budget, timeout_minutes=budget.minutes * 3 + 10)
    bundled_metrics = REPO / "runs" / "bundled" / "metrics.json"  # the bundled model's own run, where this checkout has it
    if bundled_metrics.exists():
        out["bundled_run"] = training.bundled_history(bundled_metrics, "runs/bundled/metrics.json")
    return out


def load_contenders(run: Run, runs_dir: Path, profile: Profile) -> dict[str, Any]:
    """The bundled model, the two models trained for the budget, and ddddocr where it is installed."""
    from scrapy_captcha import BUNDLED_WEIGHTS

    from .contenders import TorchContender, load_ddddocr

    contenders: dict[str, Any] = {"bundled": TorchContender("bundled", "scrapy-captcha bundled model", BUNDLED_WEIGHTS)}
    for recipe in training.RECIPES:
        weights = runs_dir / recipe.key / "weights.pt"
        if weights.exists():
            if not run.done("training"):
                run.note(f"{recipe.key}: training did not run to the end now; using the weights found in {weights}")
            contenders[recipe.key] = TorchContender(recipe.key, f"{recipe.label}, {profile.minutes:g}-min budget", weights)
        elif recipe.arch == "seed-vgg":
            contenders[recipe.key] = _untrained_seed_vgg(runs_dir / "untrained-seed-vgg.pt")
            run.note("seed-vgg: no trained weights, an untrained network stands in (its speed, size and memory "
                     "are real; its accuracy is meaningless)")
    if "ddddocr" in run.args.skip:
        run.note("ddddocr: skipped (--skip ddddocr)")
    else:
        ddddocr, why = load_ddddocr()
        if ddddocr is None:
            run.note(f"ddddocr: not measured: {why}")
        else:
            contenders["ddddocr"] = ddddocr
    for key, contender in contenders.items():
        run.results["models"][key] = {"label": contender.label, "arch": contender.arch, "file": str(contender.path),
                                      "file_bytes": contender.file_bytes, "parameters": contender.parameters}
    return contenders


def _untrained_seed_vgg(path: Path):
    """A freshly initialised seed network, for speed, size and memory when none was trained."""
    from scrapy_captcha import ModelConfig, build_model, save_weights

    from .contenders import TorchContender

    if not path.exists():
        config = ModelConfig(arch="seed-vgg", max_length=4)
        save_weights(path, build_model(config), config, {"trained_with": "nothing: untrained stand-in"})
    return TorchContender("seed-vgg", "seed VGG one-hot network, untrained", path)


def recognise_all(contenders: dict[str, Any], test) -> dict[str, Any]:
    import torch

    from . import recognition

    torch.set_num_threads(os.cpu_count() or 1)
    results = {}
    for key, contender in contenders.items():
        print(f"   {key}", flush=True)
        results[key] = recognition.recognise(contender, test)
    return results


def speed_all(contenders: list[Any], images: list[bytes], profile: Profile) -> dict[str, Any]:
    from . import speed

    result: dict[str, Any] = {"latency": {}}
    for threads in (1, 2):
        result["latency"][str(threads)] = speed.latency(contenders, images, threads, profile.latency_calls,
                                                        profile.latency_rounds, warmup=profile.warmup)
    result["forward_only"] = speed.forward_latency(contenders, images[0], threads=1, calls=profile.latency_calls)
    result["throughput"] = speed.throughput(contenders, images, profile.batch_size, profile.batches)
    return result


def memory_all(contenders: list[Any], folder: Path, images: int) -> dict[str, Any]:
    from . import memory

    result: dict[str, Any] = {"images": images, "baseline": memory.measure("baseline", folder, images)}
    for contender in contenders:
        if contender.key == "ddddocr":
            result[contender.key] = memory.measure("ddddocr", folder, images)
        else:
            result[contender.key] = memory.measure("torch", folder, images, contender.path)
    return result


def worker_all(folder: Path, images: list[bytes], quick: bool) -> dict[str, Any]:
    """The light crawl worker (issue 11): onnx solver, torch solver and ddddocr (benchmarks/worker.py)."""
    from . import worker

    return worker.run_all(folder, images, quick)


def unseen_contenders(contenders: dict[str, Any]) -> dict[str, Any]:
    """Who reads the unseen styles: every bundled model and route (``"auto"``, the middleware's default, among
    them, as ``python -m benchmarks.unseen`` measures them) and this run's ddddocr."""
    from .unseen.__main__ import load_contenders

    bundled, _ = load_contenders([], ddddocr=False)
    bundled.update({k: contenders[k] for k in ("bundled", "ddddocr") if k in contenders})  # the run's own, loaded once
    return bundled


def unseen_all(contenders: dict[str, Any], folder: Path, count: int, argv: list[str]) -> dict[str, Any]:
    """The bundled models and route and ddddocr on captchas drawn by other packages (benchmarks/unseen/)."""
    from .unseen.__main__ import section
    from .unseen.sets import DEFAULT_SEED
    from .unseen.styles import STYLES

    command = " ".join(["python -m benchmarks", *map(shlex.quote, argv)])
    return section(unseen_contenders(contenders), folder, list(STYLES), count, DEFAULT_SEED, command)


def adapt_all(folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Crawl -> record -> adapt rounds on the demo site (issue 9's goals), benchmarks/adapt.py's default scenarios."""
    from . import adapt

    options = {**options, "out": str(folder)}
    return {"options": options, "scenarios": adapt.run_scenarios(list(adapt.DEFAULT_SCENARIOS), options)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, profile = parse_args(argv)
    from . import recognition

    run = Run(args, argv, profile)
    folder = args.data_dir / ("test-0.7.1-quick" if args.quick else "test-0.7.1")
    runs_dir = args.data_dir / ("runs-quick" if args.quick else "runs")

    test = recognition.ensure_test_set(folder, profile.count, args.test_seed)
    run.results["test_set"] = {"folder": str(folder), "count": len(test.images), "command": test.command,
                               "generated_now": test.generated,
                               "style": "captcha 0.7.1, 160x60, 4 characters, seed alphabet, {index}-{label}.png"}
    if len(test.images) != profile.count:
        run.note(f"the test set in {folder} has {len(test.images)} images (asked for {profile.count}); "
                 f"delete the folder to draw a new one")

    run.section("training", lambda: train_all(runs_dir, profile.budget))
    contenders = load_contenders(run, runs_dir, profile)
    head_to_head = [c for key, c in contenders.items() if key != "crnn-budget"]  # same network as the bundled one
    run.section("recognition", lambda: recognise_all(contenders, test))
    run.section("speed", lambda: speed_all(head_to_head, test.images, profile))
    run.section("memory", lambda: memory_all(head_to_head, folder, profile.memory_images))
    run.section("worker", lambda: worker_all(folder, test.images, args.quick))
    run.section("crawl", lambda: {"plan": crawl.plan_dict(profile.crawl), "runs": crawl.run_plan(profile.crawl)})
    unseen_dir = args.data_dir / ("unseen-quick" if args.quick else "unseen")
    run.section("unseen", lambda: unseen_all(contenders, unseen_dir, profile.unseen_count, argv))
    run.section("hostile", lambda: hostile.run_all(profile.hostile))
    adapt_dir = args.data_dir / ("adapt-quick" if args.quick else "adapt")
    run.section("adapt", lambda: adapt_all(adapt_dir, profile.adapt), None if args.adapt else "long (tens of minutes): run with --adapt")

    run.write()
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'} in {run.results['total_minutes']:.1f} min",
          flush=True)
    failed = [name for name, s in run.results["sections"].items() if s["status"] == "failed"]
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
