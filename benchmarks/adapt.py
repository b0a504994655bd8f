"""``python -m benchmarks.adapt``: the rounds curve of crawl -> record -> adapt (issue 9's goals).

Scenarios, each in its own process (one Twisted reactor per process), each on a real site on
127.0.0.1 crawled by the example project with scrapy-captcha, recording into a fresh folder:

* ``loop:<style>``: no hand labels. Crawl with the bundled model, adapt on the recording, crawl
  again with the adapted weights, ``--rounds`` times (goal: from >= 10% to >= 95% accepted on
  the first try within 3 rounds, <= 20 CPU minutes in all).
* ``hand:<style>``: one crawl with the bundled model, then ``--hand-labels`` of the recorded
  images labelled by hand (simulated: the site's true text, written with
  :func:`trainer.label.write_hand_label`, the labelling page's own writer), one adapt, one crawl
  (goal: >= 90% from a start below 10%).

``<style>`` is a demo site style the bundled model was not trained on (``ribbon``, ``night``:
``example_project/demo_styles.py``), ``pool-<name>``: images that another captcha package drew
(``benchmarks/unseen``, in its own venv), served by the demo site in a random order, each once, or
``django``: a real Django site (``example_project/django_site``, in the Django venv: ``make
django-venv``) whose form uses django-simple-captcha 0.7.0, which draws, stores and checks the
captchas itself (case-insensitive; the crawl sets ``CAPTCHA_ANSWER_CASE=upper``,
``CAPTCHA_ALPHABET`` to its 26 capitals and ``CAPTCHA_ANSWER_LENGTH=4``, as a user who saw its
captchas would, and adapt keeps to the same: ``--site-alphabet``, ``--site-length``). The django
and ``pool-<name>`` scenarios also score the starting and the last weights on the package's 500
held-out images of the unseen-styles table (``benchmarks/data/unseen/<name>``, ``make unseen-sets``;
drawn with another seed than the pool, and skipped for a pool drawn with the same one), a figure
with less noise than one crawl's captchas and beside ddddocr's on the same images: the starting
weights as the first crawl read, the last ones with the length and case the crawls learned from the
site's accepted answers (``CAPTCHA_LEARN_AFTER``; ``--learn-after 0`` for none).

Rates are captchas accepted on the first try / captchas met, on fresh images of each crawl. CPU
seconds are this process's (all threads) per step; the machine is shared, so wall times vary.

    nice -n 10 python -m benchmarks.adapt --scenario loop:ribbon --scenario hand:night    # results in benchmarks/adapt.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIOS = ("loop:ribbon", "hand:night")
#: Options a scenario gets unless given. On the Django site: adapt's remedies for a letter its crawls
#: seldom accept (``I``; see trainer/adapt_prior.py), 2 x 160 products (361 captchas a crawl, so a
#: rate moves by 0.3 points a captcha, not 0.7), and in the loop every captcha of a crawl answered.
SCENARIO_DEFAULTS: dict[str, dict[str, Any]] = {
    "hand:django": {"balance": True, "synthetic_share": 0.5, "rejected_weight": 0.3, "align": True, "items": 160,
                    "adapt_steps": 1500},
    "loop:django": {"balance": True, "synthetic_share": 0.5, "rejected_weight": 0.3, "align": True, "items": 160,
                    "adapt_steps": 340, "max_attempts": 30},
    # the default model reads none of night: the first crawl records, the adapt starts from the generalist
    "hand:night": {"adapt_from": "generalist", "site_length": 4, "items": 160},
}


def draw_pool(name: str, count: int, seed: int, folder: Path) -> Path:
    """Images of another captcha package, drawn in its own venv by ``benchmarks.unseen.draw``."""
    from .unseen.styles import STYLES

    style = STYLES[name]
    python = HERE / f".venv-unseen-{style.venv}" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: make the unseen venvs first (python -m benchmarks.unseen.sets)")
    if not folder.exists():
        subprocess.run([str(python), "-m", "benchmarks.unseen.draw", name, str(folder), "--count", str(count), "--seed", str(seed)],
                       cwd=HERE, check=True)
    return folder


def make_site(style: str, pool: Path | None, categories: int, items: int):
    """The demo site, with the style or pool of images, logging the true text of every image it draws."""
    from example_project.demo_site import DemoSite, SiteOptions

    class BenchmarkSite(DemoSite):
        def __init__(self, options: SiteOptions):
            super().__init__(options)
            self.truth: dict[str, str] = {}  # sha1 of the image -> its text
            self.pool = sorted(pool.glob("*.png")) if pool else []
            random.Random(0).shuffle(self.pool)

        def draw_captcha(self, session) -> bytes:
            if not self.pool:
                png = super().draw_captcha(session)
                self.truth[hashlib.sha1(png).hexdigest()] = session.answer
                return png
            with self._lock:
                if not self.pool:
                    raise RuntimeError("the image pool ran out: draw a bigger one")
                path = self.pool.pop()
                text = path.stem.split("-", 1)[1]
                session.answer = text
                self.stats["images"] += 1
            png = path.read_bytes()
            self.truth[hashlib.sha1(png).hexdigest()] = text
            return png

    options = SiteOptions(categories=categories, items_per_category=items, solve_every=1,
                          style=style if not pool else "captcha")
    return BenchmarkSite(options)


def hand_labeller(truth: Callable[[], dict[str, str]], count: int, seed: int):
    """Label ``count`` recorded images without a known answer by the site's true text, as the page would.

    ``truth()`` maps the sha1 of each image the site served to its text.
    """
    from scrapy_captcha.recording import ACCEPTED, read_attempts
    from trainer.label import write_hand_label

    def label(round_number: int, folder: Path) -> None:
        if round_number != 1:
            return
        candidates = [a for a in read_attempts(folder) if a.verdict != ACCEPTED]
        random.Random(seed).shuffle(candidates)
        texts = truth()
        done = 0
        for attempt in candidates:
            text = texts.get(hashlib.sha1((folder / attempt.file).read_bytes()).hexdigest())
            if text is None:
                continue
            write_hand_label(folder, attempt.file, text)
            done += 1
            if done == count:
                break
        print(f"  hand-labelled {done} images", flush=True)

    return label


def check_verdicts(folder: Path, texts: dict[str, str]) -> dict[str, int]:
    """The recording's verdicts against the site's own texts, per verdict: answers that were right and wrong.

    An accepted answer that was wrong, or a rejected one that was right, would be a bug in the
    middleware's verdicts (or a site that checks otherwise than it says)."""
    from scrapy_captcha.recording import read_attempts

    counts: dict[str, int] = {}
    for attempt in read_attempts(folder):
        if attempt.answer is None:
            continue
        text = texts.get(hashlib.sha1((folder / attempt.file).read_bytes()).hexdigest())
        if text is not None:
            key = f"{attempt.verdict}_{'right' if attempt.answer.casefold() == text.casefold() else 'wrong'}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def held_out_score(weights: str | Path, folder: Path, answer_case: str, alphabet: str | None,
                   lengths: tuple[int, int] | None = None) -> dict[str, Any]:
    """Any-case accuracy of ``weights`` (a file, a bundled model's name or the route ``"auto"``) on a labelled
    folder (``{index}-{text}.png``) through the crawl's answer rules, its most common misread characters
    (position by position) and its readings of the wrong length."""
    import collections

    from scrapy_captcha.solver import Solver

    solver = Solver.from_path(weights, backend="torch")
    rules = solver.answer_rules(answer_case, alphabet, lengths)
    paths = sorted(folder.glob("*.png"))
    texts = [path.stem.split("-", 1)[1] for path in paths]
    readings = [solver.solve(path.read_bytes(), rules=rules).text for path in paths]
    misread: collections.Counter[str] = collections.Counter()
    for reading, text in zip(readings, texts):
        if len(reading) != len(text):
            misread["length"] += 1
        misread.update(f"{t}->{r}" for r, t in zip(reading.upper(), text.upper()) if r != t)
    right = sum(r.upper() == t.upper() for r, t in zip(readings, texts))
    return {"folder": str(folder), "images": len(texts), "right": right, "rate": right / max(len(texts), 1),
            "misread": dict(misread.most_common(8))}


def learned_shape(recording: Path, learn_after: int | None, answer_case: str, alphabet: str | None,
                  length: tuple[int, int] | None) -> tuple[Any, tuple[str, tuple[int, int] | None, str | None]]:
    """What the crawls learned from the site's accepted answers (CAPTCHA_LEARN_AFTER) besides the settings, as the
    middleware decides it, answer by answer; and the settings the crawl read with in the end (case, length, alphabet)."""
    from scrapy_captcha.learning import LEARN_AFTER, SiteLearning
    from scrapy_captcha.recording import ACCEPTED, read_attempts

    settings = (answer_case, length, alphabet)
    # the "rules" built for a shape are the settings that make them: those the middleware's solver would read with
    learning = SiteLearning(lambda *learned: learned, settings, LEARN_AFTER if learn_after is None else learn_after,
                            answer_case, length, alphabet)
    for attempt in read_attempts(recording):
        if attempt.verdict == ACCEPTED and attempt.answer:
            learning.accepted("site", attempt.answer)
    return learning.shape("site"), learning.rules("site")


def held_out_folder(style: str, pool_seed: int, root: Path = HERE / "benchmarks" / "data" / "unseen") -> Path | None:
    """The unseen-styles set of the scenario's captcha package (``make unseen-sets``), if there is one: the
    package's own images, which no crawl of the scenario served. None for a pool drawn with the set's own
    seed (the same images)."""
    from .unseen.sets import read_manifest

    name = "django-simple" if style == "django" else style[len("pool-"):] if style.startswith("pool-") else None
    folder = root / name if name else None
    if folder is None or not folder.is_dir():
        return None
    if style.startswith("pool-") and (read_manifest(folder) or {}).get("seed") == pool_seed:
        print(f"  no held-out score: the pool was drawn with {folder}'s own seed {pool_seed}", flush=True)
        return None
    return folder


def run_scenario(args: argparse.Namespace) -> dict[str, Any]:
    """One scenario in this process; returns its rounds."""
    import torch

    from example_project.demo import adapt_loop, parse_args

    torch.set_num_threads(args.threads)
    args.scenario = args.scenario[0]
    kind, _, style = args.scenario.partition(":")
    # the folder is named by the starting weights given, the result by those used (a scenario's defaults too)
    given = start_name(args.weights, args.adapt_from)
    out = Path(args.out) / (args.scenario.replace(":", "-") + (f"-{given}" if args.weights or args.adapt_from else ""))
    for key, value in {"balance": False, "synthetic_share": 0.0, "rejected_weight": 0.0, "align": False, "items": 64,
                       **SCENARIO_DEFAULTS.get(args.scenario, {})}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    start = start_name(args.weights, args.adapt_from)
    pool = draw_pool(style[len("pool-"):], args.pool_size, args.seed, out.parent / f"pool-{style}") if style.startswith("pool-") else None
    shutil.rmtree(out, ignore_errors=True)  # a new recording, not one grown over the last run's
    if style == "django":
        from example_project.django_site import DjangoSite

        site = DjangoSite(categories=args.categories, items_per_category=args.items, solve_every=1)
        truth = site.truth
    else:
        site = make_site(style, pool, args.categories, args.items)
        truth = lambda: site.truth  # noqa: E731
    rounds = args.rounds if kind == "loop" else 1
    if args.adapt_steps is None:
        args.adapt_steps = 150 if kind == "loop" else 1000
    if args.max_attempts is None:
        args.max_attempts = 10 if kind == "loop" else 2 * args.hand_labels + 100
    answer_case = "upper" if pool is not None or style == "django" else "as-is"
    if style == "django":
        from example_project.django_site import ALPHABET, LENGTH

        args.site_alphabet = ALPHABET if args.site_alphabet is None else args.site_alphabet
        args.site_length = LENGTH if args.site_length is None else args.site_length
    alphabet = args.site_alphabet or None
    length = (args.site_length, args.site_length) if args.site_length else None
    learning = [] if args.learn_after is None else ["-s", f"CAPTCHA_LEARN_AFTER={args.learn_after}"]
    demo_args = parse_args(["--adapt", "--rounds", str(rounds), "--adapt-steps", str(args.adapt_steps), *learning,
                            *(["--weights", args.weights] if args.weights else []),
                            *(["--adapt-from", args.adapt_from] if args.adapt_from else []),
                            "--record-dir", str(out / "recording"), "-s", f"CAPTCHA_MAX_ATTEMPTS={args.max_attempts}",
                            *(["-s", f"CAPTCHA_ANSWER_CASE={answer_case}"] if answer_case != "as-is" else []),
                            *(["-s", f"CAPTCHA_ALPHABET={alphabet}"] if alphabet else []),
                            *(["-s", f"CAPTCHA_ANSWER_LENGTH={args.site_length}"] if length else [])])
    demo_args.adapt_options = {"alphabet": alphabet, "answer_case": answer_case, "answer_length": length, "balance": args.balance,
                               "synthetic_share": args.synthetic_share, "rejected_weight": args.rejected_weight,
                               "align": args.align, **({} if args.learn_after is None else {"learn_after": args.learn_after})}
    hand = hand_labeller(truth, args.hand_labels, args.seed) if kind == "hand" else None
    started, cpu = time.perf_counter(), time.process_time()
    extra = {}
    with site:
        result = adapt_loop(site, demo_args, out / "recording", before_adapt=hand)
        if style == "django":  # the site runs in a process of its own: its CPU time is added to the total
            extra["site_cpu_seconds"] = site.cpu_seconds()
        extra["verdicts"] = check_verdicts(out / "recording", truth())
    held_out = held_out_folder(style, args.seed)
    if held_out is not None and rounds:
        # read as the crawl read at its end: with the length and case it learned from the site (scrapy_captcha.learning)
        shape, (final_case, final_length, final_alphabet) = learned_shape(out / "recording", args.learn_after, answer_case,
                                                                          alphabet, length)
        extra["learned"] = shape.describe() if shape else None
        last = out / "recording-runs" / f"round-{rounds}" / "weights.pt"
        extra["held_out_start"] = held_out_score(args.weights or "default", held_out, answer_case, alphabet, length)
        extra["held_out"] = held_out_score(last, held_out, final_case, final_alphabet, final_length)
        for key, name in (("held_out_start", "starting weights"), ("held_out", f"round-{rounds} weights")):
            print(f"  {name} on {extra[key]['images']} held-out images: {100 * extra[key]['rate']:.1f}%"
                  f" (misread {extra[key]['misread']})", flush=True)
    return {"scenario": args.scenario, "start": start, "rounds": [{**asdict(r), "rate": r.rate} for r in result],
            "wall_seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu + extra.get("site_cpu_seconds", 0.0),
            **extra,
            "settings": {k: getattr(args, k) for k in ("rounds", "adapt_steps", "categories", "items", "hand_labels", "max_attempts",
                                                       "weights", "adapt_from", "threads", "site_alphabet", "site_length", "balance",
                                                       "synthetic_share", "rejected_weight", "align", "learn_after", "seed")}}


def start_name(weights: str | None, adapt_from: str | None = None) -> str:
    """How a result names its starting weights: ``bundled``, or the folder holding them (``generalist-pilot``);
    ``bundled+adapt-from-generalist`` when the first adapt starts from other weights than the first crawl."""
    if not weights:
        name = "bundled"
    else:
        path = Path(weights)
        name = path.parent.name if path.name == "weights.pt" and path.parent.name else path.stem
    return f"{name}+adapt-from-{start_name(adapt_from)}" if adapt_from else name


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| scenario | round | weights | captchas met | accepted first try | crawl: wall s (CPU s) | adapt: wall s (CPU s) |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        for r in result["rounds"]:
            adapt = f"{r['adapt_seconds']:.0f} ({r['adapt_cpu_seconds']:.0f})" if r["adapt_seconds"] is not None else "–"
            lines.append(f"| `{result['scenario']}` | {r['number']} | {r['weights']} | {r['met']} | {100 * r['rate']:.1f}% | "
                         f"{r['crawl_seconds']:.0f} ({r['crawl_cpu_seconds']:.0f}) | {adapt} |")
        lines.append(f"| `{result['scenario']}` | all | | | | total {result['wall_seconds']:.0f} s wall, "
                     f"{result['cpu_seconds'] / 60:.1f} CPU min | |")
    return "\n".join(lines)


OPTIONS = ("out", "rounds", "adapt_steps", "categories", "items", "hand_labels", "max_attempts", "pool_size", "seed", "weights",
           "adapt_from", "threads", "site_alphabet", "site_length", "balance", "synthetic_share", "rejected_weight", "align",
           "learn_after")


def run_scenarios(scenarios: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Each scenario in a child process (one reactor each) with ``options`` (:data:`OPTIONS`, None for the default)."""
    results = []
    for scenario in scenarios:
        command = [sys.executable, "-m", "benchmarks.adapt", "--child", "--scenario", scenario,
                   *[(f"--{k.replace('_', '-')}={options[k]}" if not isinstance(options[k], bool)
                      else f"--{'' if options[k] else 'no-'}{k.replace('_', '-')}") for k in OPTIONS if options.get(k) is not None]]
        print(f"$ {' '.join(command[2:])}", flush=True)
        child = subprocess.run(command, cwd=HERE, capture_output=True, text=True)
        sys.stdout.write("".join(line + "\n" for line in child.stdout.splitlines() if not line.startswith("RESULT ")))
        if child.returncode != 0:
            raise RuntimeError(f"scenario {scenario} failed (exit status {child.returncode}): {child.stderr[-3000:]}")
        results.append(json.loads(next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))[7:]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", help="loop:STYLE or hand:STYLE (default: " + ", ".join(DEFAULT_SCENARIOS) + ")")
    parser.add_argument("--out", default="benchmarks/data/adapt", help="folder for the recordings and runs")
    parser.add_argument("--json", default="benchmarks/adapt.json", help="results file; scenarios run now replace their entries")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--adapt-steps", type=int,
                        help="steps of each adapt (default: 150 for loop, 340 for loop:django, 1000 for hand, 1500 for hand:django: a few hundred "
                             "hand labels need more)")
    parser.add_argument("--categories", type=int, default=2)
    parser.add_argument("--items", type=int, help="products per category: one captcha per page (default: 64; 160 for django)")
    parser.add_argument("--hand-labels", type=int, default=150)
    parser.add_argument("--max-attempts", type=int,
                        help="CAPTCHA_MAX_ATTEMPTS (default: 10 for loop, 30 for loop:django; for hand, 2 x hand labels + 100, so that the "
                             "first crawl, which reads almost nothing, records enough images before giving up)")
    parser.add_argument("--pool-size", type=int, default=3000, help="images drawn for a pool-<name> style")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="weights of the first crawl and adapt (default: the bundled model), e.g. "
                                          "runs/generalist-pilot/weights.pt, or auto: the route, the middleware's default, "
                                          "whose first adapt starts from the model it picks for the recording")
    parser.add_argument("--adapt-from", help="weights the first adapt starts from instead of --weights (a file or a bundled "
                                             "model's name), e.g. generalist")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default: 2; 1 spends less CPU time where other jobs share the cores)")
    parser.add_argument("--site-alphabet", help="CAPTCHA_ALPHABET of the crawls and adapt's --alphabet (default: the 26 capitals "
                                                "for django, none otherwise; '' for none)")
    parser.add_argument("--site-length", type=int, help="CAPTCHA_ANSWER_LENGTH of the crawls and adapt's --answer-length "
                                                        "(default: 4 for django, none otherwise; 0 for none)")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction,
                        help="adapt --balance: rare characters' labelled images drawn more often (default: on for the django "
                             "scenarios, see SCENARIO_DEFAULTS)")
    parser.add_argument("--synthetic-share", type=float, help="adapt --synthetic-share (default: 0.5 for django, else 0)")
    parser.add_argument("--rejected-weight", type=float, help="adapt --rejected-weight (default: 0.3 for django, else 0)")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, help="adapt --align (default: off)")
    parser.add_argument("--learn-after", type=int, help="CAPTCHA_LEARN_AFTER of the crawls and adapt's --learn-after "
                                                        "(default: theirs, 8; 0: nothing learned, as before 2026-12-07)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_scenario(args)), flush=True)
        return 0
    try:
        results = run_scenarios(args.scenario or list(DEFAULT_SCENARIOS), {k: getattr(args, k) for k in OPTIONS})
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    path = Path(args.json)
    previous = json.loads(path.read_text()) if path.exists() else []
    ran = {(r["scenario"], r["start"]) for r in results}
    kept = [r for r in previous if (r["scenario"], r.get("start", "bundled")) not in ran]
    from .__main__ import repo_relative

    path.write_text(json.dumps(repo_relative(kept + results), indent=2))
    print(table(kept + results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
