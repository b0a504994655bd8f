"""The "unseen styles" tables: the README's (between ``<!-- unseen:start -->`` and ``<!-- unseen:end -->``)
and the detailed one in ``results.md``, both from ``results.json``'s ``unseen`` section."""

from __future__ import annotations

from typing import Any

README_START, README_END = "<!-- unseen:start -->", "<!-- unseen:end -->"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _model_name(unseen: dict[str, Any], key: str) -> str:
    if key == "bundled":
        return "bundled model"
    if key.startswith("bundled:"):
        name = key.split(":", 1)[1]
        return f"bundled route `{name}` (the middleware's default)" if name == "auto" else f"bundled {name} model"
    return unseen["models"].get(key, {}).get("label", key)


def _size(style: dict[str, Any]) -> str:
    sizes = style.get("image_sizes") or []
    if not sizes:
        return "–"
    if len(sizes) == 1:
        return f"{sizes[0][0]}×{sizes[0][1]}"
    def span(values: list[int]) -> str:
        return f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"

    return f"{span([s[0] for s in sizes])}×{span([s[1] for s in sizes])}"


def _text(style: dict[str, Any]) -> str:
    low, high = style.get("lengths") or (None, None)
    length = f"{low}" if low == high else f"{low}–{high}"
    alphabet = style.get("alphabet") or ""
    kinds = [name for name, chars in (("digits", "0123456789"), ("lower", "abcdefghijklmnopqrstuvwxyz"),
                                      ("upper", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")) if set(chars) & set(alphabet)]
    return f"{length}, {'+'.join(kinds)}"


def _any_case(value: float, lower: float | None, bold: bool = False) -> str:
    """The any-case figure, and in brackets the one with ``CAPTCHA_ANSWER_CASE = "lower"`` where measured."""
    mark = "**" if bold else ""
    return f"{mark}{_pct(value)}{mark}" + ("" if lower is None else f" ({mark}{_pct(lower)}{mark})")


def _scores(result: dict[str, Any] | None) -> str:
    if not result:
        return "–"
    return (f"{_pct(result['sequence_accuracy'])} / "
            f"{_any_case(result['sequence_accuracy_case_insensitive'], result.get('any_case_lower_setting'))} / "
            f"{_pct(result['character_accuracy'])}")


def readme_table(results: dict[str, Any]) -> str:
    """The README's table: per style, each model's case-sensitive / any-case / character accuracy."""
    unseen = results.get("unseen")
    if not unseen or not unseen.get("styles"):
        return "No unseen-styles figures yet: `python -m benchmarks.unseen`.\n"
    keys = list(unseen["models"])
    header = ["Style", "Generator", "Image", "Text", "Images"] + [
        f"{_model_name(unseen, k)}: case-sensitive / any case / characters" for k in keys] + ["Set made by"]
    rows = []
    for name, style in unseen["styles"].items():
        rows.append([f"`{name}`", f"{style['generator']} {style['version']}", _size(style), _text(style),
                     str(style["count"])] + [_scores(style["results"].get(k)) for k in keys] + [f"`{style['command']}`"])
    means = ["**mean of the styles**", "", "", "", ""]
    for k in keys:
        scored = [s["results"][k] for s in unseen["styles"].values() if k in s["results"]]
        if not scored:
            means.append("–")
            continue
        mean = {m: sum(r[m] for r in scored) / len(scored) for m in
                ("sequence_accuracy", "sequence_accuracy_case_insensitive", "character_accuracy")}
        lowers = [r.get("any_case_lower_setting") for r in scored]
        lower = None if None in lowers else sum(lowers) / len(lowers)
        means.append(f"**{_pct(mean['sequence_accuracy'])}** / "
                     f"{_any_case(mean['sequence_accuracy_case_insensitive'], lower, bold=True)} / "
                     f"**{_pct(mean['character_accuracy'])}**")
    rows.append(means + [""])
    machine = unseen.get("machine") or results.get("machine", {})  # the section may run on its own, later
    caption = (f"Captchas drawn by {len({s['generator'] for s in unseen['styles'].values()})} other Python packages "
               f"({len(unseen['styles'])} sets), none of which the bundled models were trained on. Each set is drawn in the "
               f"package's own venv with its own code and defaults (options in `benchmarks/unseen/styles.py` and each "
               f"set's `manifest.json`); all sets: `{unseen['make_command']}` (`make unseen-sets`).")
    footer = (f"Measured with `{unseen.get('command')}` on {machine.get('cpu')}, {machine.get('cores')} cores, "
              f"commit {machine.get('commit')}, {machine.get('date')}. A label with characters a model cannot produce is scored as a miss; character "
              f"accuracy is 1 − edit distance / characters, floored at 0 (a model that adds many characters scores 0); "
              f"details, confusions and those counts in `benchmarks/results.md`. Any case is the answer as read, "
              f"lower-cased, against the label lower-cased; in brackets, for scrapy-captcha's models, the answer "
              f"as a site set up for either case gets it (`CAPTCHA_ANSWER_CASE = \"lower\"`: each letter's two "
              f"cases' probabilities added up before decoding).")
    return f"{caption}\n\n{_table(header, rows)}\n\n{footer}\n"


def details(results: dict[str, Any]) -> str:
    """``results.md``'s section: the README table, then per style and model the figures behind it."""
    unseen = results.get("unseen")
    if not unseen:
        return ""
    rows = []
    for name, style in unseen["styles"].items():
        for key, r in style["results"].items():
            confusions = ", ".join(f"{c['true']}→{c['predicted']} ×{c['count']}" for c in r.get("confusions", [])[:3])
            examples = ", ".join(f"{e['true']}→{e['predicted'] or '∅'}" for e in r.get("examples", [])[:3])
            outside = r.get("labels_outside_alphabet")
            rows.append([f"`{name}`", _model_name(unseen, key), str(r["count"]), _pct(r["sequence_accuracy"]),
                         _any_case(r["sequence_accuracy_case_insensitive"], r.get("any_case_lower_setting")),
                         _pct(r["character_accuracy"]),
                         str(r.get("length_mismatches", "–")), "–" if outside is None else str(outside),
                         f"{r['seconds']:.1f} s", confusions or "–", examples or "–"])
    header = ["Style", "Model", "Images", "Case-sensitive", "Any case (with \"lower\")", "Characters", "Wrong length",
              "Labels it cannot produce", "Time", "Most frequent confusions", "Mistakes (true→read)"]
    options = [f"- `{name}`: {s['generator']} {s['version']} (Pillow {s.get('pillow')}), options {s['options']}, "
               f"alphabet `{s['alphabet']}`, fonts {', '.join(s.get('fonts') or [])}; `{s['folder']}`"
               for name, s in unseen["styles"].items()]
    return "\n".join([readme_table(results), "", _table(header, rows), "", "Sets:", "", *options])
