"""``python -m trainer export WEIGHTS --out model.onnx``: a weights file for onnxruntime.

The ONNX file carries the ``.pt``'s model settings and training summary in its metadata
(``scrapy_captcha.*`` keys), takes any batch size and, for the CRNN, any width, and is checked
against the torch model before it is written: same logits on random images of several widths.

The CRNN is exported as :class:`ConvChain`, the same function written as one chain of 2-D
convolutions (BatchNorm and the input scaling folded into them, the per-column linear layers as
convolutions): onnxruntime then keeps the whole network in its blocked ``NCHWc`` layout with
ReLU fused, with no transposes or shape arithmetic between the layers: the forward pass at
batch 1 on one thread takes 0.91x (default model) and 0.95x (generalist) the time of the torch
exporter's graph (``python -m benchmarks.speed``).
The chain's ends cost little too: one ``Sub`` before the first convolution (no ``Pad``), the
output transposed by the layout change out of ``NCHWc`` itself, and no rows computed that a
pooling then drops (:func:`_trim_dropped_rows`).

``--int8 DIR`` writes a quantised model instead (int8 weights and activations, calibrated on half
of the images in DIR): about twice as fast on CPUs with int8 instructions, but no longer exactly
the float model; the export prints how many of the other half it reads differently.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from scrapy_captcha.backends.onnx_backend import META_CONFIG, META_FORMAT, META_SUMMARY, META_VERSION
from scrapy_captcha.files import replace_atomically
from scrapy_captcha.weights import FORMAT, VERSION, Weights, load_weights

OPSET = 17
#: Largest difference in logits between torch and onnxruntime that the export accepts.
TOLERANCE = 1e-3


class ExportError(ValueError):
    """The exported graph does not compute what the torch model computes."""


class ConvChain(nn.Module):
    """A trained :class:`~scrapy_captcha.model.CRNN` as one chain of 2-D convolutions, for inference.

    Same logits, rearranged weights: each BatchNorm is folded into the convolution before it, the
    input scaling ``(x - 0.5) / 0.5`` into a subtraction and the first convolution's doubled
    weights, the per-column projection into a convolution as tall as the feature map, the 1-D
    sequence convolutions into ``1 x k`` ones and the classifier into a ``1 x 1`` one. The feature
    map stays ``(N, C, 1, frames)`` to the end, where one transpose and one squeeze give
    ``(N, frames, classes)`` (onnxruntime does the transpose while leaving its blocked layout).
    """

    def __init__(self, model: nn.Module, height: int):
        super().__init__()
        layers: list[nn.Module] = []
        modules = list(model.features)
        for index, module in enumerate(modules):
            if isinstance(module, nn.BatchNorm2d):
                continue  # folded into the convolution before it
            if isinstance(module, nn.Conv2d):
                following = modules[index + 1] if index + 1 < len(modules) else None
                module = fuse_conv_bn_eval(module, following) if isinstance(following, nn.BatchNorm2d) else _copy_conv(module)
                if not layers:
                    layers += _scaled_input_conv(module)
                    continue
            layers.append(module)
        self.features = nn.Sequential(*layers)
        project = model.project[0]
        rows = height // 8  # the feature map's height (CRNN: three halvings)
        channels = project.in_features // rows
        head: list[nn.Module] = [_as_conv(project.weight.view(project.out_features, channels, rows, 1), project.bias, (0, 0))]
        head += [module for module in model.project[1:] if not isinstance(module, nn.Dropout)]
        sequence = list(model.sequence)
        for index, module in enumerate(sequence):
            if isinstance(module, nn.Conv1d):
                following = sequence[index + 1] if index + 1 < len(sequence) else None
                fused = fuse_conv_bn_eval(module, following) if isinstance(following, nn.BatchNorm1d) else module
                bias = fused.bias if fused.bias is not None else torch.zeros(fused.out_channels)
                head.append(_as_conv(fused.weight.unsqueeze(2), bias, (0, fused.padding[0])))
            elif not isinstance(module, (nn.BatchNorm1d, nn.Dropout)):
                head.append(module)
        classify = model.classify
        head.append(_as_conv(classify.weight.view(classify.out_features, classify.in_features, 1, 1), classify.bias, (0, 0)))
        self.head = nn.Sequential(*head)
        self.frames_per_column = model.frames_per_column
        self.classes = classify.out_features // model.frames_per_column

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(x)).permute(0, 2, 3, 1).squeeze(1)
        return logits if self.frames_per_column == 1 else logits.reshape(logits.shape[0], -1, self.classes)


def _copy_conv(conv: nn.Conv2d) -> nn.Conv2d:
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return _as_conv(conv.weight, bias, conv.padding, conv.stride)


def _as_conv(weight: torch.Tensor, bias: torch.Tensor, padding, stride=1) -> nn.Conv2d:
    """A Conv2d holding ``weight`` ``(out, in, kh, kw)`` and ``bias``."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride=stride, padding=padding)
    conv.weight.data = weight.detach().clone()
    conv.bias.data = bias.detach().clone()
    return conv.eval()


class _Centre(nn.Module):
    """``x - 0.5``: white becomes 0.5, and the convolution's zero padding stays what the model was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 0.5


def _scaled_input_conv(conv: nn.Conv2d) -> list[nn.Module]:
    """``conv((x - 0.5) / 0.5)`` == ``x - 0.5``, then ``conv`` with its weights doubled and its own zero padding
    (no ``Pad`` node with white, as before: the padding happens inside onnxruntime's ``Conv``)."""
    return [_Centre(), _as_conv(2 * conv.weight.detach(), conv.bias.detach(), conv.padding, conv.stride)]


def _trim_dropped_rows(graph, height: int) -> None:
    """Drop the bottom padding of a convolution whose odd number of output rows a 2x2 pooling then halves.

    The pooling ignores the last row, so not computing it changes nothing (the bundled model: 15 rows
    into the second pooling, 1/15 of that convolution saved). Height is fixed (only widths vary), so
    the rows are known here; the chain runs Sub/Conv/Relu/MaxPool in order.
    """
    from onnx import helper

    nodes = list(graph.node)
    for index, node in enumerate(nodes):
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            kernel, stride = attributes["kernel_shape"][0], attributes.get("strides", [1, 1])[0]
            pads = list(attributes.get("pads", [0, 0, 0, 0]))
            height = (height + pads[0] + pads[2] - kernel) // stride + 1
            following = [n.op_type for n in nodes[index + 1:index + 3]]
            pool = nodes[index + 2] if following == ["Relu", "MaxPool"] else None
            pool_shape = pool and [list(helper.get_attribute_value(a)) for a in pool.attribute if a.name == "kernel_shape"]
            if pool_shape == [[2, 2]] and height % 2 == 1 and pads[2] > 0:
                pads[2] -= 1
                height -= 1
                for attribute in node.attribute:
                    if attribute.name == "pads":
                        attribute.CopyFrom(helper.make_attribute("pads", pads))
        elif node.op_type == "MaxPool":
            height //= attributes["kernel_shape"][0]


def to_onnx_bytes(weights: Weights, conv_chain: bool = True) -> bytes:
    """The model of ``weights`` as ONNX bytes, with its settings and summary as metadata.

    A CRNN is exported as its :class:`ConvChain` unless ``conv_chain`` is false (the graph the
    torch exporter makes of the module as written, for comparisons).
    """
    import onnx

    config = weights.config
    model = weights.build("cpu")
    if conv_chain and config.arch == "crnn":
        model = ConvChain(model, config.height).eval()
    example = torch.ones(1, config.channels, config.height, config.width)
    axes = {0: "batch", 3: "width"} if config.head in ("ctc", "gate") else {0: "batch"}
    output_axes = {0: "batch", 1: "frames"} if config.head == "ctc" else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": output_axes})
    graph = onnx.load_from_string(buffer.getvalue())
    if conv_chain and config.arch == "crnn":
        _trim_dropped_rows(graph.graph, config.height)
    _set_metadata(graph, config, weights.summary)
    graph.doc_string = "scrapy-captcha model; settings in the metadata (scrapy_captcha.config)"
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def compare(weights: Weights, onnx_bytes: bytes, seed: int = 0) -> float:
    """Largest absolute difference in logits between torch and onnxruntime on random images."""
    import onnxruntime as ort

    config = weights.config
    model = weights.build("cpu")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    generator = np.random.default_rng(seed)
    widths = [config.width] if config.head == "one-hot" else sorted({config.width, 8 * max(4, config.min_width // 8), 8 * 37})
    worst = 0.0
    for batch, width in zip((1, 3, 2), widths * 3):
        images = generator.random((batch, config.channels, config.height, width), dtype=np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(images)).numpy()
        got = session.run(None, {"image": images})[0]
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime gives logits of shape {got.shape}, torch {expected.shape} (input {images.shape})")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def quantize(onnx_bytes: bytes, weights: Weights, images: list[Path]) -> tuple[bytes, dict[str, Any]]:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on half of ``images``; the
    other half measures how often the result reads differently from the float model.

    The first layer (it reads the raw image) and the classifier stay float: on the benchmark's 2000
    images that changed 1 answer of the bundled model where quantising every layer changed 10, at
    the same speed within noise (0.43x and 0.48x the float forward pass; ``python -m benchmarks.int8_variants``).
    """
    from scrapy_captcha import Solver
    from scrapy_captcha.backends.onnx_backend import OnnxBackend
    from scrapy_captcha.image import to_array

    if len(images) < 20:
        raise ExportError(f"--int8 needs at least 20 images of the captchas to calibrate on, found {len(images)}")
    calibration = [to_array(path.read_bytes(), weights.config) for path in images[::2]]
    held_out = [path.read_bytes() for path in images[1::2]]

    with tempfile.TemporaryDirectory() as folder:
        plain, prepared, layers = prepare_for_quantization(onnx_bytes, Path(folder))
        info = {"quantized": "int8 (static, QDQ, per-channel weights; first layer and classifier float)",
                "calibration_images": len(calibration)}
        fast_path = quantize_layers(prepared, plain.with_name("fast.onnx"), calibration, layers[1:-1], weights.config,
                                    {**weights.summary, **info})
        exact, fast = Solver(OnnxBackend(plain)), Solver(OnnxBackend(fast_path))
        differ = sum(a.text != b.text for a, b in zip(exact.solve_batch(held_out), fast.solve_batch(held_out)))
        return fast_path.read_bytes(), {**info, "held_out_images": len(held_out), "held_out_differing": differ}


def prepare_for_quantization(onnx_bytes: bytes, folder: Path) -> tuple[Path, Path, list[str]]:
    """Write the float graph to ``folder/float.onnx`` and onnxruntime's pre-processed copy beside it;
    returns both paths and the names of the layers that can be quantised (Conv, MatMul, Gemm), in graph order."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    plain, prepared = folder / "float.onnx", folder / "prepared.onnx"
    plain.write_bytes(onnx_bytes)
    quant_pre_process(str(plain), str(prepared))
    layers = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type in ("Conv", "MatMul", "Gemm")]
    return plain, prepared, layers


def quantize_layers(prepared: Path, out: Path, calibration: list[np.ndarray], layers: list[str], config,
                    summary: dict[str, Any]) -> Path:
    """Quantise ``layers`` of the pre-processed graph statically (QDQ, per-channel int8 weights, uint8
    activations, calibrated one image at a time on ``calibration``) into ``out``, with our metadata."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rest = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            array = next(self.rest, None)
            return None if array is None else {"image": array[None]}

    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=layers)
    graph = onnx.load(str(out))
    _set_metadata(graph, config, summary)
    out.write_bytes(graph.SerializeToString())
    return out


def _set_metadata(graph, config, summary: dict[str, Any]) -> None:
    metadata = {META_FORMAT: FORMAT, META_VERSION: str(VERSION), META_CONFIG: json.dumps(config.to_dict()),
                META_SUMMARY: json.dumps(summary, default=str)}
    del graph.metadata_props[:]
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)


def export(weights_path: str | Path | None, out: str | Path, int8: str | Path | None = None) -> tuple[Path, float]:
    """Export ``weights_path`` (default: the bundled ``.pt``) to ``out``; returns the path and the checked difference.

    With ``int8`` (a folder of captcha images), a quantised model instead; the difference returned is
    then the share of held-out images it reads differently from the float model.
    """
    weights = load_weights(weights_path)
    data = to_onnx_bytes(weights)
    difference = compare(weights, data)
    if difference > TOLERANCE:
        raise ExportError(f"the exported graph's logits differ from torch's by {difference:.2e} (> {TOLERANCE:.0e})")
    if int8 is not None:
        folder = Path(int8)
        if not folder.is_dir():
            raise ExportError(f"--int8 {str(folder)!r} is not a folder of captcha images")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"))
        data, info = quantize(data, weights, images)
        difference = info["held_out_differing"] / info["held_out_images"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(out, data)
    return out, difference
