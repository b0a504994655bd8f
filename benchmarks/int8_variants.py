"""Which layers to quantise: int8 variants of a model against its float ONNX graph, answer by answer.

``python -m benchmarks.int8_variants [--weights PT] [--calibration DIR]`` exports the model as
``python -m trainer export`` does (the conv chain), quantises it statically (QDQ, per-channel int8
weights, uint8 activations, MinMax calibration on the first 300 images of ``--calibration``,
seed-style renderer images by default, never a test set) with several choices of layers, and
reports for each: answers identical to the float graph on the benchmark's 2000 images (batch 1),
the largest confidence gap, both accuracies, and the forward pass time against the float one
(medians, float and int8 taking turns, one thread).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: Layer choices: which of the graph's Conv/MatMul/Gemm nodes (in graph order) become int8.
VARIANTS = {
    "all": lambda layers: layers,
    "inner": lambda layers: layers[1:-1],  # first layer and classifier float: `trainer export --int8`
    "features": lambda layers: [n for n in layers if n.startswith("/features")],
    "heavy": lambda layers: [n for n in layers if n.startswith("/features")][1:],  # the 3x3 convolutions after the first
}


def run(weights_path: Path | None, calibration: Path, images: list[bytes], labels: list[str], variants: list[str],
        rounds: int = 10) -> dict[str, Any]:
    from scrapy_captcha import Solver
    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.image import to_array
    from scrapy_captcha.weights import load_weights
    from trainer.export import prepare_for_quantization, quantize_layers, to_onnx_bytes

    weights = load_weights(weights_path)
    cal = [to_array(p.read_bytes(), weights.config) for p in sorted(calibration.glob("*.png"))[:300]]

    out: dict[str, Any] = {"weights": str(weights_path or "bundled"), "calibration": str(calibration),
                           "calibration_images": len(cal), "variants": {}}
    with tempfile.TemporaryDirectory() as folder:
        plain, prepared, layers = prepare_for_quantization(to_onnx_bytes(weights), Path(folder))
        exact = Solver(OnnxBackend(plain))
        reference = [exact.solve(image) for image in images]
        x = to_array(images[0], weights.config)[None]
        for variant in variants:
            path = quantize_layers(prepared, Path(folder) / f"{variant}.onnx", cal, VARIANTS[variant](layers),
                                   weights.config, weights.summary)
            fast = Solver(OnnxBackend(path))
            got = [fast.solve(image) for image in images]
            times: dict[str, list[float]] = {"float": [], "int8": []}
            for _ in range(rounds):
                for key, backend in (("float", exact.backend), ("int8", fast.backend)):
                    for _ in range(30):
                        began = time.perf_counter()
                        backend.run(x)
                        times[key].append((time.perf_counter() - began) * 1000)
            float_ms, int8_ms = statistics.median(times["float"]), statistics.median(times["int8"])
            out["variants"][variant] = {
                "int8_layers": len(VARIANTS[variant](layers)), "of_layers": len(layers),
                "identical": sum(a.text == b.text for a, b in zip(reference, got)), "images": len(images),
                "max_confidence_gap": max(abs(a.confidence - b.confidence) for a, b in zip(reference, got)),
                "float_exact": sum(a.text == t for a, t in zip(reference, labels)) / len(labels),
                "int8_exact": sum(a.text == t for a, t in zip(got, labels)) / len(labels),
                "float_any_case": sum(a.text.lower() == t.lower() for a, t in zip(reference, labels)) / len(labels),
                "int8_any_case": sum(a.text.lower() == t.lower() for a, t in zip(got, labels)) / len(labels),
                "forward_float_ms": float_ms, "forward_int8_ms": int8_ms, "forward_ratio": int8_ms / float_ms,
                "differing": [{"index": i, "float": a.text, "int8": b.text, "float_confidence": round(a.confidence, 3)}
                              for i, (a, b) in enumerate(zip(reference, got)) if a.text != b.text][:20],
            }
            print(json.dumps({variant: {k: v for k, v in out["variants"][variant].items() if k != "differing"}}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from .recognition import ensure_test_set, read_labelled_folder
    from .worker import calibration_images

    parser = argparse.ArgumentParser(prog="python -m benchmarks.int8_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a .pt file (default: the bundled model)")
    parser.add_argument("--calibration", type=Path, help="images to calibrate on (default: benchmarks/data/calibration-mixed, "
                                                          "drawn by the renderer if missing)")
    parser.add_argument("--images", type=Path, help="{index}-{label}.png images to compare on (default: the benchmark's 2000)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=HERE / "data" / "int8_variants.json")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if args.images:
        images, labels = read_labelled_folder(args.images)
    else:
        test = ensure_test_set(HERE / "data" / "test-0.7.1", 2000, 4)
        images, labels = test.images, test.labels
    calibration = args.calibration or calibration_images(HERE / "data" / "calibration-mixed")
    result = run(args.weights, calibration, images, labels, variants)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
