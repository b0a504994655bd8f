"""``python -m benchmarks.learned_rules``: what ``CAPTCHA_LEARN_AFTER`` is worth on the unseen styles.

For each set of the unseen-styles table (``benchmarks/data/unseen/<set>``, ``make unseen-sets``) a
crawl is played out on other images of the same package (``--learn-images``, drawn with seed 0 in
the package's venv, as ``benchmarks.adapt``'s pools): the route ``auto`` reads each image as the
middleware would by then (the answer rules of :class:`scrapy_captcha.learning.SiteLearning`, the
trial of :class:`scrapy_captcha.model_trial.ModelTrials`), the site accepts a reading equal to its
text in any case (as the demo site and these packages' own checks do), and what it learned is kept. Then the set's 500 held-out images, which the crawl never
saw, are read with the rules as it ships and with the learned rules, side by side with ddddocr
1.6.1's figures of the same images from ``benchmarks/results.json``.

``--recurring 6 30`` plays each crawl again as 6 (and 30) shorter crawls one after another, each
starting afresh or from the learn file the last one wrote (``CAPTCHA_LEARN_FILE``).

    nice -n 10 python -m benchmarks.learned_rules      # benchmarks/learned_rules.json and .md
    nice -n 10 python -m benchmarks.learned_rules --recurring 6 30   # learned_rules_recurring.json and .md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
UNSEEN = HERE / "benchmarks" / "data" / "unseen"


def new_knowledge(solver: Any, after: int, trial: bool = True, learn_file: Path | None = None) -> Any:
    """What the middleware knows of the sites as it starts, with no answer settings (its learn file read, if any):
    a :class:`~scrapy_captcha.site_knowledge.SiteKnowledge` with the route's trial (``trial=False``: the route alone)."""
    from scrapy_captcha.learning import SiteLearning
    from scrapy_captcha.model_trial import ModelTrials
    from scrapy_captcha.site_knowledge import SiteKnowledge, rules_builder

    learning = SiteLearning(rules_builder(solver), solver.answer_rules("as-is", None, None), after)
    knowledge = SiteKnowledge(solver, learning, ModelTrials(solver.route.first.name) if trial else None,
                              lambda key, count=1: None, learn_file=learn_file)
    knowledge.load()
    return knowledge


def site_rules(knowledge: Any, site: str) -> Any:
    """The rules the middleware reads ``site``'s captchas with, once its trial is over."""
    rules = knowledge.learning.rules(site)
    trials = knowledge.trials
    return knowledge.one_model_rules(rules) if trials is not None and trials.goes_to_otherwise(site) else rules


def run_now(coroutine: Any) -> Any:
    """The result of a coroutine that never waits (its reads are synchronous), without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine waited for something")


def play_crawl(solver: Any, knowledge: Any, folder: Path | None, site: str = "site.test", order: int = 0,
               case_sensitive: bool = False, paths: list[Path] | None = None) -> dict[str, Any]:
    """Read ``folder``'s images (or ``paths``) in order (``order`` > 0: shuffled with that seed) as the middleware reads a
    crawl of one site: through ``knowledge`` (:func:`new_knowledge`), which learns from the accepted answers and tries
    the route's models on the verdicts."""
    import random

    if paths is None:
        paths = sorted(folder.glob("*.png"), key=lambda path: int(path.stem.split("-", 1)[0]))
    if order:
        paths = list(paths)
        random.Random(order).shuffle(paths)
    learned_at: dict[str, int] = {}
    met = 0

    def inc(key: str, count: int = 1) -> None:
        if key.startswith("trial/"):
            learned_at["model"] = met

    knowledge.inc = inc
    accepted = 0
    for met, path in enumerate(paths, 1):
        text, data = path.stem.split("-", 1)[1], path.read_bytes()

        async def read(rules: Any, answered: bool) -> Any:
            return solver.solve(data, rules=rules)

        prediction, arm = run_now(knowledge.read(site, read))
        right = bool(prediction.text) and (prediction.text == text if case_sensitive else prediction.text.casefold() == text.casefold())
        before = knowledge.learning.shape(site)
        knowledge.verdict(site, arm, right, prediction.text if right else None)
        accepted += right
        after = knowledge.learning.shape(site)
        learned_at.update({part: met for part in ("length", "case", "kind")
                           if getattr(after, part) is not None and getattr(before, part) is None})
    trials = knowledge.trials
    return {"images": len(paths), "accepted": accepted, "shape": knowledge.learning.shape(site).describe(),
            "model": "the generalist" if trials is not None and trials.goes_to_otherwise(site) else "the gate", "learned_at": learned_at}


def score(solver: Any, rules: Any, folder: Path) -> dict[str, float]:
    """Case-sensitive and any-case accuracy of ``solver`` with ``rules`` on a labelled folder."""
    from trainer.metrics import score as accuracy

    paths = sorted(folder.glob("*.png"))
    texts = [path.stem.split("-", 1)[1] for path in paths]
    figures = accuracy([solver.solve(path.read_bytes(), rules=rules).text for path in paths], texts)
    return {"images": len(texts), "case_sensitive": figures["sequence_accuracy"],
            "any_case": figures["sequence_accuracy_case_insensitive"]}


def ddddocr_figures(results: Path) -> dict[str, dict[str, float]]:
    """ddddocr's accuracy per unseen set, from the last ``python -m benchmarks.unseen`` run."""
    if not results.exists():
        return {}
    styles = json.loads(results.read_text()).get("unseen", {}).get("styles", {})
    figures = {}
    for name, style in styles.items():
        cell = style.get("results", {}).get("ddddocr")
        if cell:
            figures[name] = {"case_sensitive": cell["sequence_accuracy"], "any_case": cell["sequence_accuracy_case_insensitive"]}
    return figures


def measure(sets: list[str], learn_images: int, after: int, orders: int = 1) -> list[dict[str, Any]]:
    from scrapy_captcha.solver import Solver

    from .adapt import draw_pool

    solver = Solver.from_path("auto", backend="onnx")
    base = solver.answer_rules("as-is", None, None)
    rows = []
    for name in sets:
        started = time.perf_counter()
        pool = draw_pool(name, learn_images, 0, HERE / "benchmarks" / "data" / "learn-pools" / f"{name}-{learn_images}")
        knowledge = new_knowledge(solver, after)
        crawl = play_crawl(solver, knowledge, pool)
        if orders > 1 and knowledge.trials.started("site.test"):
            # how often the trial of the models goes the same way, over the crawl's images in other orders
            crawl["generalist_in_orders"] = sum(
                play_crawl(solver, new_knowledge(solver, after), pool, order=k)["model"] == "the generalist" for k in range(1, orders))
            crawl["orders"] = orders - 1
        row = {"set": name, "crawl": crawl, "as_it_ships": score(solver, base, UNSEEN / name),
               "learned": score(solver, site_rules(knowledge, "site.test"), UNSEEN / name),
               "seconds": time.perf_counter() - started}
        rows.append(row)
        print(f"{name:22s} learned {crawl['shape']!r}, {crawl['model']}, at {crawl['learned_at']} ({crawl['accepted']} of {crawl['images']} accepted); "
              f"held-out any case {100 * row['as_it_ships']['any_case']:.1f}% -> {100 * row['learned']['any_case']:.1f}%", flush=True)
    return rows


def seed_style_trials(folder: Path, orders: int, after: int) -> dict[str, Any]:
    """The trial on the ``captcha`` library's own style, a case-sensitive site: how often the generalist takes it,
    and the answers the trial costs against the route alone (the same images, in ``orders`` orders)."""
    from scrapy_captcha.solver import Solver

    solver = Solver.from_path("auto", backend="onnx")
    plain = play_crawl(solver, new_knowledge(solver, after, trial=False), folder, case_sensitive=True)  # the route alone, learning as usual
    runs = [play_crawl(solver, new_knowledge(solver, after), folder, order=k, case_sensitive=True) for k in range(1, orders + 1)]
    return {"folder": str(folder), "images": plain["images"], "orders": orders, "accepted_without_trial": plain["accepted"],
            "accepted_with_trial": [run["accepted"] for run in runs],
            "generalist_took_the_site": sum(run["model"] == "the generalist" for run in runs)}


def recurring_crawls(name: str, learn_images: int, crawls: int, after: int) -> dict[str, Any]:
    """The played-out crawl of set ``name`` as ``crawls`` shorter crawls one after another (:func:`crawl_after_crawl`)."""
    from scrapy_captcha.solver import Solver

    from .adapt import draw_pool

    solver = Solver.from_path("auto", backend="onnx")
    pool = draw_pool(name, learn_images, 0, HERE / "benchmarks" / "data" / "learn-pools" / f"{name}-{learn_images}")
    paths = sorted(pool.glob("*.png"), key=lambda path: int(path.stem.split("-", 1)[0]))
    result = {"set": name, **crawl_after_crawl(solver, paths, crawls, after)}
    print(f"{name:22s} accepted per crawl of {result['captchas_per_crawl']}: afresh {[run['accepted'] for run in result['afresh']]}, "
          f"with the learn file {[run['accepted'] for run in result['with_learn_file']]}", flush=True)
    return result


def crawl_after_crawl(solver: Any, paths: list[Path], crawls: int, after: int) -> dict[str, Any]:
    """``paths`` read as ``crawls`` crawls one after another, each starting afresh, or from the learn file the last one
    wrote (``CAPTCHA_LEARN_FILE``, through :class:`~scrapy_captcha.site_knowledge.SiteKnowledge` as the middleware
    reads and writes it); what each crawl got accepted and learned."""
    import tempfile

    size = len(paths) // crawls
    result: dict[str, Any] = {"crawls": crawls, "captchas_per_crawl": size}
    with tempfile.TemporaryDirectory() as folder:
        for kept in (False, True):
            learn_file = Path(folder) / "captcha-learned.json" if kept else None
            runs = []
            for crawl in range(crawls):
                knowledge = new_knowledge(solver, after, learn_file=learn_file)  # as the middleware starts
                runs.append(play_crawl(solver, knowledge, None, paths=paths[crawl * size:(crawl + 1) * size]))
                knowledge.save()  # as the spider closes
            result["with_learn_file" if kept else "afresh"] = [
                {key: run[key] for key in ("accepted", "shape", "model", "learned_at")} for run in runs]
    return result


def compact_json(value: Any, indent: str = "") -> str:
    """JSON indented like ``indent=2``, but any object or list short enough on one line (a crawl's figures) on one line."""
    flat = json.dumps(value)
    if len(flat) <= 110 or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    items = ([f"{inner}{json.dumps(key)}: {compact_json(item, inner)}" for key, item in value.items()] if isinstance(value, dict)
             else [f"{inner}{compact_json(item, inner)}" for item in value])
    brackets = "{}" if isinstance(value, dict) else "[]"
    return brackets[0] + "\n" + ",\n".join(items) + "\n" + indent + brackets[1]


def recurring_table(rows: list[dict[str, Any]]) -> str:
    """Answers accepted in all the crawls of a set, afresh -> with the learn file, per way of cutting the crawl."""
    cuts = sorted({(row["crawls"], row["captchas_per_crawl"]) for row in rows})
    lines = ["| set | " + " | ".join(f"{crawls} crawls of {size}: afresh -> with the learn file" for crawls, size in cuts) + " |",
             "|---|" + "---:|" * len(cuts)]
    for name in dict.fromkeys(row["set"] for row in rows):
        cells = []
        for crawls, size in cuts:
            row = next(row for row in rows if row["set"] == name and row["crawls"] == crawls)
            afresh, kept = (sum(run["accepted"] for run in row[key]) for key in ("afresh", "with_learn_file"))
            change = f" ({100 * (kept - afresh) / afresh:+.1f}%)" if afresh else ""
            cells.append(f"{afresh} -> {f'**{kept}**' if kept > afresh else kept}{change}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], ddddocr: dict[str, dict[str, float]]) -> str:
    def cell(figures: dict[str, float] | None, other: dict[str, float] | None = None) -> str:
        if not figures:
            return "–"
        parts = []
        for key in ("case_sensitive", "any_case"):
            text = f"{100 * figures[key]:.1f}%"
            parts.append(f"**{text}**" if other and figures[key] > other[key] else text)
        return " / ".join(parts)

    lines = ["| set | learned from the crawl (at the captcha met) | ddddocr 1.6.1 | the route as it ships | the route, learned |",
             "|---|---|---:|---:|---:|"]
    for row in rows:
        crawl, dd = row["crawl"], ddddocr.get(row["set"])
        at = ", ".join(f"{part} {met}" for part, met in crawl["learned_at"].items())
        model = "; every captcha to the generalist" if crawl["model"] == "the generalist" else ""
        if "orders" in crawl:
            model += f" (so in {crawl['generalist_in_orders']} of {crawl['orders']} other orders)"
        lines.append(f"| `{row['set']}` | {crawl['shape']}{model}{f' ({at})' if at else ''}; {crawl['accepted']} of {crawl['images']} accepted | "
                     f"{cell(dd)} | {cell(row['as_it_ships'], dd)} | {cell(row['learned'], dd)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .unseen.styles import STYLES

    parser = argparse.ArgumentParser(prog="python -m benchmarks.learned_rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=sorted(STYLES), help="unseen sets (default: all)")
    parser.add_argument("--learn-images", type=int, default=600,
                        help="images of the played-out crawl, per set (default 600: enough for the trial of the models where "
                             "the gate gives the default model a third of them)")
    parser.add_argument("--after", type=int, help="CAPTCHA_LEARN_AFTER (default: its default)")
    parser.add_argument("--orders", type=int, default=21,
                        help="where a trial of the route's models ran: also play the crawl in this many - 1 shuffled orders, "
                             "and count how often the generalist took the site (default 21)")
    parser.add_argument("--seed-style", type=Path, metavar="DIR",
                        help="instead: the trial on a folder of the captcha library's style as a case-sensitive site, in "
                             "--orders orders (e.g. data/test-0.7.1); written to learned_rules_seed.json beside --out")
    parser.add_argument("--recurring", type=int, nargs="+", metavar="N",
                        help="instead: each set's crawl as N shorter crawls one after another (each N given), afresh and with "
                             "a learn file (CAPTCHA_LEARN_FILE); written to learned_rules_recurring.json and .md beside --out")
    parser.add_argument("--out", type=Path, default=HERE / "benchmarks" / "learned_rules.json")
    args = parser.parse_args(argv)
    from scrapy_captcha.learning import LEARN_AFTER

    if args.recurring:
        from .machine import describe

        after = LEARN_AFTER if args.after is None else args.after
        rows = [recurring_crawls(name, args.learn_images, crawls, after) for crawls in args.recurring for name in args.sets]
        out = args.out.with_name(args.out.stem + "_recurring.json")
        out.write_text(compact_json({"command": "python -m benchmarks.learned_rules " + " ".join(argv if argv is not None else sys.argv[1:]),
                                     "learn_after": after, "machine": describe(), "rows": rows}) + "\n")
        markdown = recurring_table(rows)
        out.with_suffix(".md").write_text(markdown + "\n")
        print(markdown)
        return 0

    if args.seed_style:
        from .machine import describe

        result = seed_style_trials(args.seed_style, args.orders, LEARN_AFTER if args.after is None else args.after)
        result["machine"] = describe()
        out = args.out.with_name(args.out.stem + "_seed.json")
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({key: value for key, value in result.items() if key != "machine"}))
        return 0
    missing = [name for name in args.sets if not (UNSEEN / name).is_dir()]
    if missing:
        print(f"missing unseen sets: {', '.join(missing)} (make unseen-sets)", file=sys.stderr)
        return 2
    after = LEARN_AFTER if args.after is None else args.after
    rows = measure(args.sets, args.learn_images, after, args.orders)
    ddddocr = ddddocr_figures(HERE / "benchmarks" / "results.json")
    from .__main__ import repo_relative
    from .machine import describe

    result = {"command": "python -m benchmarks.learned_rules " + " ".join(argv if argv is not None else sys.argv[1:]),
              "learn_after": after, "learn_images": args.learn_images, "machine": describe(), "rows": rows,
              "ddddocr": ddddocr}
    args.out.write_text(json.dumps(repo_relative(result), indent=2) + "\n")
    markdown = table(rows, ddddocr)
    args.out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
