"""Render ``results.json`` as ``results.md``, and the README's performance table from the same data.

    python -m benchmarks.report                            # rewrite benchmarks/results.md from results.json
    python -m benchmarks.report --readme                   # print the README's performance tables
    python -m benchmarks.report --update-readme README.md  # put them between the README's markers
    python -m benchmarks.report --check-readme README.md   # fail if the README's tables are out of date

Both come from :func:`readme_table`, so the README and ``results.md`` always show the same numbers.
The README holds the tables between ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README_START, README_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
COLUMNS = ("bundled", "seed-vgg", "ddddocr")  # the head-to-head models, in table order
LATENCY_GOAL, SIZE_GOAL = 50, 30


# -- formatting ------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def mib(size_bytes: float | None) -> str:
    if size_bytes is None:
        return "–"
    size = size_bytes / 2**20
    return f"{size:.0f} MiB" if size >= 100 else f"{size:.1f} MiB"


def count(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e6:.1f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}×" if value < 100 else f"{value:.0f}×"


def minutes(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} min"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# -- derived figures ---------------------------------------------------------------------------


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The bundled model against the seed network (and ddddocr): speed, size and accuracy."""
    out: dict[str, Any] = {}
    for other in ("seed-vgg", "ddddocr"):
        figures: dict[str, Any] = {}
        for threads in ("1", "2"):
            mine = _get(results, "speed", "latency", threads, "bundled", "median_ms")
            theirs = _get(results, "speed", "latency", threads, other, "median_ms")
            figures[f"latency_speedup_{threads}_thread"] = theirs / mine if mine and theirs else None
        mine, theirs = _get(results, "speed", "throughput", "bundled", "images_per_second"), \
            _get(results, "speed", "throughput", other, "images_per_second")
        figures["throughput_ratio"] = mine / theirs if mine and theirs else None
        mine, theirs = _get(results, "models", "bundled", "file_bytes"), _get(results, "models", other, "file_bytes")
        figures["file_size_ratio"] = theirs / mine if mine and theirs else None
        mine, theirs = _get(results, "models", "bundled", "parameters"), _get(results, "models", other, "parameters")
        figures["parameter_ratio"] = theirs / mine if mine and theirs else None
        for case in ("sequence_accuracy", "sequence_accuracy_case_insensitive"):
            mine, theirs = _get(results, "recognition", "bundled", case), _get(results, "recognition", other, case)
            figures[f"{case}_difference"] = mine - theirs if mine is not None and theirs is not None else None
        out[other] = figures
    seed = out["seed-vgg"]
    speedups = [seed[f"latency_speedup_{t}_thread"] for t in ("1", "2")]
    out["goals"] = {
        "latency_50x": None if None in speedups else all(s >= LATENCY_GOAL for s in speedups),
        "size_30x": None if seed["file_size_ratio"] is None else seed["file_size_ratio"] >= SIZE_GOAL,
        "higher_accuracy": None if seed["sequence_accuracy_difference"] is None else seed["sequence_accuracy_difference"] > 0,
    }
    return out


def _label(results: dict[str, Any], key: str) -> str:
    if key == "bundled":
        return "scrapy-captcha (bundled CRNN, torch solver)"
    if key == "seed-vgg":
        budget = _get(results, "settings", "training_budget", "minutes")
        return f"seed VGG network, trained here {budget:g} min" if budget is not None else "seed VGG network"
    if key == "crnn-budget":
        budget = _get(results, "settings", "training_budget", "minutes")
        return f"CRNN, default recipe, trained here {budget:g} min"
    return _get(results, "models", key, "label") or key


def machine_line(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    extras = f", ddddocr {m['ddddocr']} (onnxruntime {m['onnxruntime']})" if m.get("ddddocr") else ""
    return (f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, CPU only; Python {m.get('python')}, "
            f"torch {m.get('torch')}, Scrapy {m.get('scrapy')}, captcha {m.get('captcha')}{extras}; "
            f"commit {m.get('commit')}; {m.get('date')}")


# -- the README's table --------------------------------------------------------------------------


def readme_table(results: dict[str, Any]) -> str:
    """The README's performance section: the model table, the crawl table and the measured ratios."""
    keys = [k for k in COLUMNS if k in results.get("models", {})]
    header = [""] + [_label(results, k) for k in keys]
    rec = results.get("recognition", {})
    lat = _get(results, "speed", "latency") or {}
    thr = _get(results, "speed", "throughput") or {}
    mem = results.get("memory", {})
    train = results.get("training", {})
    budget = _get(results, "settings", "training_budget", "minutes")

    def row(name: str, cell) -> list[str]:
        return [name] + [cell(k) for k in keys]

    def latency(threads: str):
        return lambda k: (f"{ms(_get(lat, threads, k, 'median_ms'))} (p95 {ms(_get(lat, threads, k, 'p95_ms'))})"
                          if _get(lat, threads, k) else "–")

    def train_cell(k: str) -> str:
        run = train.get("crnn-budget" if k == "bundled" else k)
        if not run:
            return "–" if k != "ddddocr" else "n/a (pretrained)"
        reached = [run["minutes_to"].get(t) for t in ("0.90", "0.95")]
        text = " / ".join(minutes(v) if v is not None else "not reached" for v in reached)
        if None in reached:
            text += f" (best {pct(run['best_accuracy_case_insensitive'])} in {run['budget_minutes']:g} min)"
        return text

    rows = [
        row("Captcha accuracy, case-sensitive", lambda k: pct(_get(rec, k, "sequence_accuracy"))),
        row("Captcha accuracy, any case", lambda k: pct(_get(rec, k, "sequence_accuracy_case_insensitive"))),
        row("Character accuracy", lambda k: pct(_get(rec, k, "character_accuracy"))),
        row("Latency per image, batch 1, 1 thread", latency("1")),
        row("Latency per image, batch 1, 2 threads", latency("2")),
        row(f"Images per second, batch {_get(next(iter(thr.values()), {}), 'batch_size') or 64}", lambda k: (f"{_get(thr, k, 'images_per_second'):.0f}"
                                                       + ("" if _get(thr, k, "batched") else " (one by one)"))
            if _get(thr, k) else "–"),
        row("Model file", lambda k: mib(_get(results, "models", k, "file_bytes"))),
        row("Parameters", lambda k: count(_get(results, "models", k, "parameters"))),
        row(f"Peak memory, load + {mem.get('images', 100)} solves", lambda k: mib((_get(mem, k, "peak_rss_mib") or 0) * 2**20 or None)),
    ]
    if budget is not None:
        rows.append(row(f"Training to 90% / 95% any case ({budget:g}-min budget)", train_cell))
    parts = [table(header, rows)]

    notes = []
    if "bundled" in keys and "crnn-budget" in rec:
        notes.append(f"The bundled model's training row is the default recipe run with the same {budget:g}-minute budget "
                     f"as the seed network; that run reads the test set at "
                     f"{pct(_get(rec, 'crnn-budget', 'sequence_accuracy_case_insensitive'))} any case "
                     f"({pct(_get(rec, 'crnn-budget', 'sequence_accuracy'))} case-sensitive).")
    if _get(mem, "baseline", "peak_rss_mib"):
        notes.append(f"Peak memory includes the runtime: importing torch and scrapy_captcha alone takes "
                     f"{mib(mem['baseline']['peak_rss_mib'] * 2**20)}; ddddocr's process runs onnxruntime without torch.")
    r = results.get("ratios", {}).get("seed-vgg", {})
    if r:
        notes.append(
            f"Bundled model against the seed network: {times(r.get('latency_speedup_1_thread'))} faster per image at batch 1 "
            f"with 1 thread ({times(r.get('latency_speedup_2_thread'))} with 2), "
            f"{times(r.get('file_size_ratio'))} smaller file, {times(r.get('parameter_ratio'))} fewer parameters "
            f"(goals: ≥ {LATENCY_GOAL}× faster, ≥ {SIZE_GOAL}× smaller, more accurate).")
    parts.append("\n".join(f"- {n}" for n in notes))

    crawl = crawl_table(results)
    if crawl:
        parts.append(crawl)
    parts.append(f"Measured with `{results.get('command')}` on {machine_line(results)}. "
                 "All figures come from that one run; details in `benchmarks/results.md`.")
    return "\n\n".join(parts) + "\n"


def _runs_text(runs: int) -> str:
    return "one crawl each" if runs == 1 else f"median of {runs} crawls each, gates off and on alternating"


def crawl_table(results: dict[str, Any]) -> str:
    runs = _get(results, "crawl", "runs")
    if not runs:
        return ""
    plan = _get(results, "crawl", "plan") or {}
    rows = []
    for r in runs:
        on, off = r["on"], r["off"]
        first = on["solved_first_time"]
        solved = on["captcha"]["solved"]
        rows.append([
            r["concurrency"],
            f"{off['pages_per_second_median']:.0f}",
            f"{on['pages_per_second_median']:.0f}",
            f"{r['speed_ratio']:.2f}",
            f"{on['captchas_met']}",
            f"{first} ({first / solved:.0%})" if solved else f"{first}",
            f"{on['attempts_per_solved']:.2f}" if on["attempts_per_solved"] is not None else "–",
            pct(on["solve_share"]),
            "yes" if on["complete"] and off["complete"] else "NO",
        ])
    pages = runs[0]["off"]["expected_pages"]
    caption = (f"Crawl: the example `catalog` spider over the demo shop ({pages} catalogue pages, "
               f"{runs[0]['off']['expected_items']} products), captcha gates off, then on with a new captcha every "
               f"{plan.get('solve_every')} pages of a session; bundled model; "
               f"{_runs_text(runs[0]['off'].get('runs', 1))}.")
    header = ["Concurrency", "Pages/s, no captcha", "Pages/s, captchas", "Ratio", "Captchas met",
              "Solved first time", "Attempts per solved", "Solve share of crawl time", "All pages reached"]
    return caption + "\n\n" + table(header, rows)


# -- results.md ---------------------------------------------------------------------------------


def render_markdown(results: dict[str, Any]) -> str:
    parts = ["# Benchmarks", ""]
    if results.get("quick"):
        parts += ["**Quick smoke run (`--quick`): tiny sizes, the figures below mean nothing.**", ""]
    parts += [
        f"Command: `{results.get('command')}`  ",
        f"Machine: {machine_line(results)}  ",
        f"Finished {results.get('finished')}, {results.get('total_minutes', 0):.1f} minutes in all; load average "
        f"(1, 5, 15 min) when it started: {_get(results, 'machine', 'load_average_at_start')} "
        f"(well above 0 means something else was using the CPU).",
        "",
        "Every figure here comes from this one run: the contenders were measured side by side on the same machine "
        "and the same images, taking turns so that passing load on the machine hits them alike; latencies are "
        "medians with the 95th percentile beside them. Absolute numbers depend on the machine; the ratios "
        "travel better.",
        "",
        "## Summary (the README's performance table)",
        "",
        readme_table(results),
    ]
    for title, render in (("Goals", _goals), ("Recognition", _recognition), ("Inference speed", _speed),
                          ("Peak memory", _memory), ("Light crawl worker", _worker), ("Training cost", _training), ("Crawl", _crawl),
                          ("Unseen styles", _unseen), ("Hostile pages", _hostile), ("Learning a site's captchas (adapt)", _adapt)):
        body = render(results)
        if body:
            parts += [f"## {title}", "", body, ""]
    if results.get("notes"):
        parts += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    sections = results.get("sections", {})
    if sections:
        rows = [[name, s["status"], s.get("why", ""), minutes(s.get("minutes"))] for name, s in sections.items()]
        parts += ["## Sections", "", table(["Section", "Status", "Why", "Time"], rows), ""]
    return "\n".join(parts).rstrip() + "\n"


def _goals(results: dict[str, Any]) -> str:
    r = results.get("ratios", {})
    seed, goals = r.get("seed-vgg", {}), r.get("goals", {})
    if not seed:
        return ""

    def verdict(flag: bool | None) -> str:
        return "not measured" if flag is None else "met" if flag else "not met"

    lines = [
        f"- Faster per image at batch 1 than the seed network, goal ≥ {LATENCY_GOAL}×: "
        f"{times(seed.get('latency_speedup_1_thread'))} with 1 thread, {times(seed.get('latency_speedup_2_thread'))} "
        f"with 2 threads: **{verdict(goals.get('latency_50x'))}**.",
        f"- Smaller, goal ≥ {SIZE_GOAL}×: file {times(seed.get('file_size_ratio'))}, parameters "
        f"{times(seed.get('parameter_ratio'))}: **{verdict(goals.get('size_30x'))}**.",
        f"- More accurate: {_signed(seed.get('sequence_accuracy_difference'))} case-sensitive, "
        f"{_signed(seed.get('sequence_accuracy_case_insensitive_difference'))} any case (percentage points, bundled "
        f"minus seed network trained for the budget): **{verdict(goals.get('higher_accuracy'))}**.",
        f"- Throughput at batch {_get(results, 'speed', 'throughput', 'bundled', 'batch_size')}: "
        f"{times(seed.get('throughput_ratio'))} the seed network's images per second.",
    ]
    d = r.get("ddddocr", {})
    if d and d.get("latency_speedup_1_thread"):
        lines.append(f"- Against ddddocr: {times(d.get('latency_speedup_1_thread'))} faster at batch 1 (1 thread), "
                     f"{times(d.get('file_size_ratio'))} smaller file, {_signed(d.get('sequence_accuracy_case_insensitive_difference'))} "
                     f"any-case accuracy.")
    return "\n".join(lines)


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}"


def _recognition(results: dict[str, Any]) -> str:
    rec, test = results.get("recognition"), results.get("test_set", {})
    if not rec:
        return ""
    rows = []
    for key, r in rec.items():
        model = _get(results, "models", key) or {}
        confusions = ", ".join(f"{c['true']}→{c['predicted']} ×{c['count']}" for c in r.get("confusions", [])[:3])
        rows.append([_label(results, key), pct(r["sequence_accuracy"]), pct(r["sequence_accuracy_case_insensitive"]),
                     pct(r["character_accuracy"]), str(r.get("length_mismatches", "–")), mib(model.get("file_bytes")),
                     count(model.get("parameters")), confusions or "–"])
    header = ["Model", "Captcha accuracy", "Any case", "Characters", "Wrong length", "File", "Parameters",
              "Most frequent confusions"]
    text = (f"{test.get('count')} images ({test.get('style')}), drawn once with `{test.get('command')}` into "
            f"`{test.get('folder')}` and reused by later runs. Character accuracy is 1 − edit distance / characters. "
            f"ddddocr is used out of the box (its default model, no character set restriction); its answers are "
            f"scored as they come, case-sensitive and case-folded.")
    return text + "\n\n" + table(header, rows)


def _speed(results: dict[str, Any]) -> str:
    speed = results.get("speed")
    if not speed:
        return ""
    keys = list(speed.get("throughput", {}))
    rows = []
    for key in keys:
        cells = [_label(results, key)]
        for threads in ("1", "2"):
            r = _get(speed, "latency", threads, key)
            cells.append(f"{ms(r['median_ms'])} / {ms(r['p95_ms'])} ({r['calls']} calls)" if r else "–")
        forward = _get(speed, "forward_only", key, "median_ms")
        cells.append(ms(forward) if forward is not None else "–")
        t = speed["throughput"][key]
        cells.append(f"{t['images_per_second']:.0f}" + ("" if t["batched"] else " (one by one: no batch API)"))
        rows.append(cells)
    batch = next(iter(speed["throughput"].values()))
    text = (f"Latency: bytes → text for one image (`Solver.solve`, the middleware's path; `DdddOcr.classification` for "
            f"ddddocr), median / p95. Throughput: {batch['batch_size']} images per call with {batch['threads']} threads "
            f"(`Solver.solve_batch`), median of {batch['batches']} calls.")
    text += (" Forward pass only: the network alone on an already preprocessed image (batch 1, 1 thread, median), "
             "to show how much of a solve is the network.")
    return text + "\n\n" + table(["Model", "Batch 1, 1 thread", "Batch 1, 2 threads", "Forward pass only",
                                  f"Images/s, batch of {batch['batch_size']}"], rows)


def _memory(results: dict[str, Any]) -> str:
    mem = results.get("memory")
    if not mem:
        return ""
    rows = [[_label(results, k) if k != "baseline" else "import torch + scrapy_captcha only", mib(v["peak_rss_mib"] * 2**20),
             f"`{v['command']}`"] for k, v in mem.items() if isinstance(v, dict)]
    return (f"Peak resident set size (`VmHWM` in `/proc/self/status`, the peak that `ru_maxrss` reports) of a fresh process that loads the model and solves "
            f"{mem.get('images')} images one by one.\n\n" + table(["Process", "Peak RSS", "Command"], rows))


def _training(results: dict[str, Any]) -> str:
    train = results.get("training")
    if not train:
        return ""
    budget = _get(results, "settings", "training_budget") or {}
    rows, commands, curves = [], [], []
    for key, run in train.items():
        if key == "bundled_run" or not run:
            continue
        to = run["minutes_to"]
        rows.append([run["label"], f"{run['budget_minutes']:g} min", minutes(to.get("0.90")) if to.get("0.90") is not None
                     else "not reached", minutes(to.get("0.95")) if to.get("0.95") is not None else "not reached",
                     f"{pct(run['best_accuracy_case_insensitive'])} at {minutes(run['best_at_minutes'])}", str(run["steps"])])
        commands.append(f"- {run['label']}: `{run['command']}`")
        points = ", ".join(f"{p['minutes']:.1f}: {p['accuracy_case_insensitive']:.1%}" for p in run["curve"])
        curves.append(f"- {run['label']} (minutes: any-case validation accuracy): {points}")
    text = (f"Each model trained from scratch in this run, one after the other, with the same wall-clock budget of "
            f"{budget.get('minutes', 0):g} minutes (the trainer's `--max-minutes` fits the whole one-cycle schedule "
            f"into it). Minutes are the trainer's clock (from the start of the training loop; validation time included), read at each "
            f"validation, every {budget.get('steps_per_epoch')} steps, on {budget.get('val_size')} synthetic images "
            f"of both styles. Same recipe for both (synthetic captchas of both library styles, batch "
            f"{budget.get('batch_size')}, AdamW one-cycle, augmentation on) except the learning rate: the seed "
            f"network keeps the seed notebook's 1e-3.")
    out = [text, "", table(["Recipe", "Budget", "To 90% any case", "To 95% any case", "Best", "Steps"], rows), "",
           "Commands:", "", *commands, "", "Curves:", "", *curves]
    long_run = train.get("bundled_run")
    if long_run:
        to = long_run["minutes_to"]
        out += ["", f"For reference, not reproduced by this command: the bundled model's own training run "
                    f"(`{long_run['source']}`, {long_run.get('budget_minutes'):g}-minute budget, validated every "
                    f"{long_run.get('steps_per_epoch')} steps) reached "
                    f"90% any case at {minutes(to.get('0.90'))} and 95% at {minutes(to.get('0.95'))}, best "
                    f"{pct(long_run.get('best_accuracy_case_insensitive'))} over {minutes(long_run.get('total_minutes'))}."]
    return "\n".join(out)


def _crawl(results: dict[str, Any]) -> str:
    runs = _get(results, "crawl", "runs")
    if not runs:
        return ""
    lines = [crawl_table(results), ""]
    for r in runs:
        for gate in ("off", "on"):
            g = r[gate]
            c = g["captcha"]
            lines.append(
                f"- {r['concurrency']}, captchas {gate}: {g['elapsed_seconds']:.1f} s for {g['pages']}/{g['expected_pages']} "
                f"pages and {g['items']}/{g['expected_items']} items, {g['requests']} requests, "
                f"{g['failed_requests']} failed; captcha stats: detected {c['detected']}, attempts {c['attempts']}, "
                f"solved {c['solved']}, incorrect {c['incorrect']}, low confidence {c['low_confidence']}, gave up "
                f"{c['gave_up']}, waited {c['waited']}, solve time {c['solve_time']:.2f} s; `{g['command']}`")
    lines += ["", "Pages/s counts catalogue pages (home, listings, products) over Scrapy's `elapsed_time_seconds`. "
                  "The solve share is the middleware's `captcha/solve_time` over that elapsed time; solving runs in a "
                  "thread, so other downloads continue meanwhile and the share is an upper bound on the crawl's wait."]
    return "\n".join(lines)


def readme_block(text: str) -> str | None:
    """What a README holds between the benchmark markers, or None when it has no markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[start + len(README_START):end].strip("\n") + "\n"


def _hostile(results: dict[str, Any]) -> str:
    from .hostile import render

    return render(results["hostile"]) if "hostile" in results else ""


def _adapt(results: dict[str, Any]) -> str:
    from .adapt import table as adapt_table

    return adapt_table(results["adapt"]["scenarios"]) if results.get("adapt") else ""


def _worker(results: dict[str, Any]) -> str:
    from .worker import worker_table

    return worker_table(results["worker"]) if "worker" in results else ""


def _unseen(results: dict[str, Any]) -> str:
    from .unseen.report import details

    return details(results)


def unseen_block(text: str) -> str | None:
    """What a README holds between the unseen-styles markers, or None when it has none."""
    from .unseen.report import README_END as END, README_START as START

    start, end = text.find(START), text.find(END)
    return None if start < 0 or end < start else text[start + len(START):end].strip("\n") + "\n"


def _update_unseen(text: str, results: dict[str, Any]) -> str:
    """``text`` with the unseen-styles table put between its markers (unchanged without markers or figures)."""
    from .unseen.report import README_END as END, README_START as START, readme_table as unseen_table

    if unseen_block(text) is None or not results.get("unseen"):
        return text
    head, rest = text.split(START, 1)
    return f"{head}{START}\n{unseen_table(results)}{END}{rest.split(END, 1)[1]}"


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    """Replace the text between the README's benchmark markers with :func:`readme_table`."""
    text = readme.read_text(encoding="utf-8")
    if readme_block(text) is None:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} markers to put the tables between")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    text = f"{head}{README_START}\n{readme_table(results)}{README_END}{tail}"
    readme.write_text(_update_unseen(text, results), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=HERE / "results.json")
    parser.add_argument("--readme", action="store_true", help="print the README's performance tables instead")
    parser.add_argument("--update-readme", type=Path, metavar="README",
                        help=f"write the tables into README between {README_START} and {README_END}")
    parser.add_argument("--check-readme", type=Path, metavar="README",
                        help="exit with status 1 if README's tables differ from results.json")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    if args.check_readme:
        block = readme_block(args.check_readme.read_text(encoding="utf-8"))
        text = args.check_readme.read_text(encoding="utf-8")
        if block != readme_table(results) or _update_unseen(text, results) != text:
            print(f"{args.check_readme} does not show {args.results}: "
                  f"python -m benchmarks.report --update-readme {args.check_readme}", file=sys.stderr)
            return 1
        print(f"{args.check_readme} agrees with {args.results}")
    elif args.update_readme:
        update_readme(args.update_readme, results)
        print(f"updated {args.update_readme}")
    elif args.readme:
        sys.stdout.write(readme_table(results))
    else:
        target = args.results.with_name("results.md")
        target.write_text(render_markdown(results), encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
