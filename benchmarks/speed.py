"""Inference speed: per-image latency at batch 1 and images per second at batch 64.

Latency is bytes -> text for one image, the path the middleware takes (``Solver.solve``:
decode, preprocess, forward pass, CTC or one-hot decoding). The contenders take turns in rounds
so that a passing load on the machine hits all of them alike; medians are reported.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable, Sequence

from .contenders import Contender


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency(contenders: Sequence[Contender], images: Sequence[bytes], threads: int, calls: int = 300,
            rounds: int = 5, seconds_per_model: float = 20.0, warmup: int = 5) -> dict[str, dict[str, Any]]:
    """Milliseconds per ``solve(image)`` for each contender with ``threads`` threads.

    Each contender makes up to ``calls`` calls in ``rounds`` turns, fewer if it would take more
    than ``seconds_per_model`` (but at least 20 calls).
    """
    for contender in contenders:
        contender.set_threads(threads)
        for image in images[:warmup]:  # the first calls pay for allocations and lazy set-up
            contender.solve(image)
    samples: dict[str, list[float]] = {c.key: [] for c in contenders}
    spent: dict[str, float] = {c.key: 0.0 for c in contenders}
    per_round = max(1, calls // rounds)
    cursor = 0
    for _ in range(rounds):
        for contender in contenders:
            budget = seconds_per_model / rounds
            round_began = time.perf_counter()
            for _ in range(per_round):
                image = images[cursor % len(images)]
                cursor += 1
                began = time.perf_counter()
                contender.solve(image)
                samples[contender.key].append((time.perf_counter() - began) * 1000)
                if time.perf_counter() - round_began > budget and len(samples[contender.key]) >= 20:
                    break
            spent[contender.key] += time.perf_counter() - round_began
    return {
        key: {
            "threads": threads,
            "calls": len(values),
            "median_ms": statistics.median(values),
            "p95_ms": _percentile(values, 0.95),
            "mean_ms": statistics.fmean(values),
        }
        for key, values in samples.items()
    }


def throughput(contenders: Sequence[Contender], images: Sequence[bytes], batch_size: int = 64, repeats: int = 5,
               threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Images per second, bytes -> text, ``batch_size`` images per call (one by one where there is no batch API)."""
    threads = threads or os.cpu_count() or 1
    batch = [images[i % len(images)] for i in range(batch_size)]
    for contender in contenders:
        contender.set_threads(threads)
        contender.solve_batch(batch)  # warm-up
    seconds: dict[str, list[float]] = {c.key: [] for c in contenders}
    for _ in range(repeats):
        for contender in contenders:
            began = time.perf_counter()
            contender.solve_batch(batch)
            seconds[contender.key].append(time.perf_counter() - began)
    return {
        c.key: {
            "threads": threads,
            "batch_size": batch_size,
            "batches": repeats,
            "images_per_second": batch_size / statistics.median(seconds[c.key]),
            "batched": c.batch_api,
        }
        for c in contenders
    }


def forward_latency(contenders: Sequence[Contender], image: bytes, threads: int = 1, calls: int = 200,
                    seconds_per_model: float = 10.0) -> dict[str, dict[str, Any]]:
    """Milliseconds per forward pass alone (a preprocessed 1-image batch in, logits out), PyTorch models only.

    Set beside the bytes -> text latency, it shows how much of a solve is the network itself.
    """
    import torch

    from scrapy_captcha.image import to_tensor

    torch.set_num_threads(threads)
    out = {}
    for contender in contenders:
        solver = getattr(contender, "solver", None)
        if solver is None:
            continue
        batch = to_tensor(image, solver.config)[None]
        values: list[float] = []
        began_all = time.perf_counter()
        with torch.inference_mode():
            for _ in range(3):
                solver.model(batch)
            while len(values) < calls and (len(values) < 20 or time.perf_counter() - began_all < seconds_per_model):
                began = time.perf_counter()
                solver.model(batch)
                values.append((time.perf_counter() - began) * 1000)
        out[contender.key] = {"threads": threads, "calls": len(values), "median_ms": statistics.median(values)}
    return out


# -- where a solve's time goes ------------------------------------------------------------------

#: The stages of ``Solver.solve`` at batch 1, in order; ``solve`` is the whole call, bytes -> text.
STAGES = ("decode", "preprocess", "forward", "text", "solve")


def stage_latency(solvers: dict[str, Any], images: Sequence[bytes], calls: int = 300, rounds: int = 5,
                  warmup: int = 5, others: Sequence[Contender] = ()) -> dict[str, dict[str, float]]:
    """Median milliseconds of each of :data:`STAGES` per solver, one image at a time, solvers taking turns.

    ``decode`` is :func:`~scrapy_captcha.image.load_image` (PNG bytes -> PIL image), ``preprocess``
    :func:`~scrapy_captcha.image.to_array`, ``forward`` the backend alone, ``text`` CTC decoding;
    ``solve`` is a separate whole ``Solver.solve(bytes)`` call, so it includes the glue the stages
    leave out. ``others`` (ddddocr) are timed on ``solve`` alone, in the same rounds.
    """
    from scrapy_captcha.image import load_image, to_array

    def timed(solver) -> Any:
        def run(image: bytes) -> list[float]:
            marks = [time.perf_counter()]
            picture = load_image(image)
            marks.append(time.perf_counter())
            array = to_array(picture, solver.config)
            marks.append(time.perf_counter())
            logits = solver.backend.run(array[None])
            marks.append(time.perf_counter())
            solver._decode(logits, None)
            marks.append(time.perf_counter())
            solver.solve(image)
            marks.append(time.perf_counter())
            return [(b - a) * 1000 for a, b in zip(marks, marks[1:])]
        return run

    runners = {key: timed(solver) for key, solver in solvers.items()}
    for contender in others:
        runners[contender.key] = lambda image, c=contender: _timed_solve(c, image)
    out = {}
    for key, rows in interleaved_samples(runners, images, calls, rounds, warmup).items():
        stages = STAGES if len(rows[0]) == len(STAGES) else ("solve",)
        out[key] = {stage: statistics.median(row[i] for row in rows) for i, stage in enumerate(stages)}
        out[key]["calls"] = len(rows)
    return out


def interleaved_samples(runners: dict[str, Callable[[bytes], list[float]]], images: Sequence[bytes], calls: int,
                        rounds: int, warmup: int) -> dict[str, list[list[float]]]:
    """Each runner's timings (one list per call) over about ``calls`` images, the runners taking turns in
    ``rounds`` chunks of the same images, so that a machine's slow spell falls on all of them alike."""
    for run in runners.values():
        for image in images[:warmup]:
            run(image)
    samples: dict[str, list[list[float]]] = {key: [] for key in runners}
    per_round = max(1, calls // rounds)
    for round_index in range(rounds):
        chunk = [images[(round_index * per_round + i) % len(images)] for i in range(per_round)]
        for key, run in runners.items():
            samples[key] += [run(image) for image in chunk]
    return samples


def _timed_solve(contender: Contender, image: bytes) -> list[float]:
    began = time.perf_counter()
    contender.solve(image)
    return [(time.perf_counter() - began) * 1000]


def answers(solver: Any, reference: Sequence[Any], images: Sequence[bytes]) -> dict[str, Any]:
    """How many of ``images`` ``solver`` reads (batch 1) as the ``reference`` predictions say, and the largest confidence gap."""
    same, gap, differing = 0, 0.0, []
    for index, (image, b) in enumerate(zip(images, reference)):
        a = solver.solve(image)
        same += a.text == b.text
        gap = max(gap, abs(a.confidence - b.confidence))
        if a.text != b.text and len(differing) < 20:
            differing.append({"index": index, "text": a.text, "reference": b.text, "reference_confidence": round(b.confidence, 3)})
    return {"images": len(images), "identical": same, "max_confidence_gap": gap, "differing": differing}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.speed``: each weights file's solve, stage by stage, with each ONNX graph, beside ddddocr."""
    import argparse
    import json
    import tempfile
    from pathlib import Path

    import torch

    from scrapy_captcha import Solver
    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.weights import BUNDLED_WEIGHTS, load_weights
    from trainer.export import compare, quantize, to_onnx_bytes

    from .contenders import load_ddddocr
    from .machine import describe
    from .recognition import ensure_test_set, read_labelled_folder

    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=main.__doc__)
    parser.add_argument("--weights", type=Path, action="append", help=".pt files (repeatable; default: the bundled model)")
    parser.add_argument("--int8", type=Path, action="append", metavar="DIR",
                        help="also an int8 model, calibrated on the images in DIR (one per --weights, in order; never a test set)")
    parser.add_argument("--calls", type=int, default=600, help="solves per contender (default 600, in 6 rounds)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="a folder of {index}-{label}.png images to time and compare on (default: the benchmark's 2000)")
    parser.add_argument("--profile", action="store_true", help="also onnxruntime's per-node profile of each float graph")
    parser.add_argument("--session-options", action="store_true",
                        help="also the conv chain's forward pass under other onnxruntime session settings")
    parser.add_argument("--out", type=Path, default=here / "data" / "speed.json")
    args = parser.parse_args(argv)
    weights_files = args.weights or [BUNDLED_WEIGHTS]
    torch.set_num_threads(1)  # the torch reference answers: one thread, like every timed solve here
    if args.images:
        images = read_labelled_folder(args.images)[0]
    else:
        images = ensure_test_set(here / "data" / "test-0.7.1", 2000, 4).images
    if not images:
        parser.error(f"no {{index}}-{{label}}.png images in {args.images}")
    result: dict[str, Any] = {"machine": describe(), "images": str(args.images or "benchmarks/data/test-0.7.1"),
                              "load_average_before": os.getloadavg(), "models": {}}
    solvers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for number, path in enumerate(weights_files):
            weights = load_weights(path)
            torch_solver = Solver(weights)  # the torch solver's answers, in batches of 64 (as fast as torch gets on a CPU)
            reference = [p for start in range(0, len(images), 64) for p in torch_solver.solve_batch(images[start:start + 64])]
            name = "bundled" if path.resolve() == BUNDLED_WEIGHTS else path.parent.name if path.stem == "weights" else path.stem
            model: dict[str, Any] = {"weights": str(path), "graphs": {}}
            for graph, chain in (("torch-export", False), ("conv-chain", True)):
                data = to_onnx_bytes(weights, conv_chain=chain)
                file = Path(folder) / f"{number}-{graph}.onnx"
                file.write_bytes(data)
                solvers[f"{name} {graph}"] = solver = Solver(OnnxBackend(file))
                model["graphs"][graph] = {"logit_difference": compare(weights, data), "nodes": _nodes(data),
                                          "load_ms": _load_ms(file), "answers_vs_torch": answers(solver, reference, images)}
                if args.profile:
                    model["graphs"][graph]["profile"] = op_profile(file, images[0])
                if args.session_options and chain:
                    model["graphs"][graph]["session_options"] = session_options(file, images)
            if args.int8 and number < len(args.int8):
                calibration = sorted(p for p in args.int8[number].iterdir() if p.suffix == ".png")
                data, info = quantize(to_onnx_bytes(weights), weights, calibration)
                file = Path(folder) / f"{number}-int8.onnx"
                file.write_bytes(data)
                solvers[f"{name} int8"] = solver = Solver(OnnxBackend(file))
                info["answers_vs_torch"] = answers(solver, reference, images)
                info["calibration"] = str(args.int8[number])
                model["graphs"]["int8"] = info
            result["models"][name] = model
        ddddocr, _ = load_ddddocr()
        others = [ddddocr] if ddddocr is not None else []
        for contender in others:
            contender.set_threads(1)
        result["latency_ms"] = stage_latency(solvers, images, calls=args.calls, rounds=6, others=others)
    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(stage_table(result))
    for name, model in result["models"].items():
        for graph, info in model["graphs"].items():
            if "profile" in info:
                top = ", ".join(f"{node} {us:.0f}" for node, us in list(info["profile"]["nodes_us"].items())[:8])
                print(f"{name} {graph}: run {info['profile']['run_us']:.0f} us, nodes {info['profile']['sum_of_nodes_us']:.0f} us: {top}")
            if "session_options" in info:
                print(f"{name} {graph}, forward time against the backend's settings: "
                      + ", ".join(f"{key} {ratio:.2f}x" for key, ratio in info["session_options"].items()))
    print(f"wrote {args.out}")
    return 0


def op_profile(path: Any, image: bytes, runs: int = 300) -> dict[str, Any]:
    """onnxruntime's own profile of ``path`` at batch 1, one thread: median microseconds per node
    (after the graph optimisations, so fused and re-laid-out nodes) and per whole run."""
    import collections
    import json
    import tempfile

    import onnxruntime as ort

    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.image import to_array

    batch = to_array(image, OnnxBackend(path).config)[None]
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = f"{folder}/profile"
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, {"image": batch})
        events = json.loads(open(session.end_profiling()).read())
    skip = runs // 5  # the first runs pay for allocations
    nodes: dict[str, list[float]] = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            nodes[f"{event['args'].get('op_name')} {event['name'][:-len('_kernel_time')]}"].append(event["dur"])
    whole = [event["dur"] for event in events if event.get("name") == "model_run"][skip:]
    per_node = {name: statistics.median(values[skip:]) for name, values in nodes.items()}
    return {"run_us": statistics.median(whole), "nodes_us": dict(sorted(per_node.items(), key=lambda kv: -kv[1])),
            "sum_of_nodes_us": sum(per_node.values())}


def session_options(path: Any, images: Sequence[bytes], rounds: int = 12) -> dict[str, float]:
    """The forward pass of ``path`` at batch 1, one thread, under onnxruntime session settings other
    than the backend's: each setting's median against the backend's own (paired rounds; <1 faster)."""
    import onnxruntime as ort

    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.image import to_array

    backend = OnnxBackend(path)
    batches = [to_array(image, backend.config)[None] for image in images[:50]]
    name_in, name_out = backend.session.get_inputs()[0].name, backend.session.get_outputs()[0].name

    def session(level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, entries=(), **fields):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        for key, value in fields.items():
            setattr(options, key, value)
        for key, value in entries:
            options.add_session_config_entry(key, value)
        made = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda batch: made.run([name_out], {name_in: batch})

    def bound(run_session):
        binding = run_session.io_binding()

        def run(batch):
            binding.bind_cpu_input(name_in, batch)
            binding.bind_output(name_out)
            run_session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        return run

    variants = {
        "backend": backend.run,
        "optimisation level extended (no NCHWc layout)": session(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
        "no memory pattern": session(enable_mem_pattern=False),
        "no CPU memory arena": session(enable_cpu_mem_arena=False),
        "denormals as zero": session(entries=[("session.set_denormal_as_zero", "1")]),
        "no spinning": session(entries=[("session.intra_op.allow_spinning", "0")]),
        "I/O binding": bound(backend.session),
    }
    times: dict[str, list[float]] = {key: [] for key in variants}
    for run in variants.values():
        for batch in batches[:5]:
            run(batch)
    for _ in range(rounds):
        for key, run in variants.items():
            for batch in batches:
                began = time.perf_counter()
                run(batch)
                times[key].append(time.perf_counter() - began)
    base = statistics.median(times["backend"])
    return {key: statistics.median(values) / base for key, values in times.items() if key != "backend"}


def _load_ms(path: Any, repeats: int = 5) -> float:
    """Median milliseconds to load ``path`` into an onnxruntime solver (libraries already imported)."""
    from scrapy_captcha import Solver

    values = []
    for _ in range(repeats):
        began = time.perf_counter()
        Solver.from_path(path, backend="onnx", threads=1)
        values.append((time.perf_counter() - began) * 1000)
    return statistics.median(values)


def _nodes(onnx_bytes: bytes) -> int:
    import onnx

    return len(onnx.load_from_string(onnx_bytes).graph.node)


def stage_table(result: dict[str, Any]) -> str:
    """:func:`main`'s figures as Markdown: milliseconds per stage, and the solve against ddddocr's."""
    latency = result["latency_ms"]
    ddddocr = latency.get("ddddocr", {}).get("solve")
    lines = ["| model, graph | " + " | ".join(STAGES) + " | ddddocr's solve / this solve | same answers as torch | load |",
             "|---|" + "---:|" * (len(STAGES) + 3)]
    for key, figures in latency.items():
        name, _, graph = key.rpartition(" ")
        info = result["models"].get(name, {}).get("graphs", {}).get(graph, {})
        same = info.get("answers_vs_torch")
        cells = [f"{figures[s]:.3f}" if s in figures else "" for s in STAGES]
        ratio = f"{ddddocr / figures['solve']:.1f}x" if ddddocr else ""
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {ratio} | "
                     + (f"{same['identical']}/{same['images']} (conf. within {same['max_confidence_gap']:.1e})" if same else "")
                     + (f" | {info['load_ms']:.0f} ms |" if "load_ms" in info else " | |"))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.exit(main())
