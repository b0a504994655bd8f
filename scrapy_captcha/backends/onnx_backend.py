"""The onnxruntime backend: reads ``.onnx`` files written by ``python -m trainer export``.

An ONNX file is a protobuf graph of standard operators: loading it runs no code from it. The
model's settings and training summary travel in its metadata (``scrapy_captcha.*`` keys), so the
file alone is enough, like a ``.pt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..weights import FORMAT, VERSION, WeightsError, check_file

#: Metadata keys of an exported model.
META_FORMAT, META_VERSION, META_CONFIG, META_SUMMARY = (
    "scrapy_captcha.format", "scrapy_captcha.version", "scrapy_captcha.config", "scrapy_captcha.summary")


def read_metadata(metadata: dict[str, str], path: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The model settings and summary stored in an exported file's metadata, checked."""
    if metadata.get(META_FORMAT) != FORMAT:
        raise WeightsError(f"{path}: an ONNX model, but not one exported by scrapy-captcha (no {META_FORMAT} metadata)")
    if metadata.get(META_VERSION) != str(VERSION):
        raise WeightsError(f"{path}: weights format version {metadata.get(META_VERSION)!r} is not supported (expected {VERSION})")
    try:
        config = ModelConfig.from_dict(json.loads(metadata[META_CONFIG]))
        summary = json.loads(metadata.get(META_SUMMARY) or "{}")
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: damaged model settings in the ONNX metadata: {exc!r}") from exc
    return config, summary if isinstance(summary, dict) else {}


class OnnxBackend:
    """One onnxruntime session: graph optimisations on, ``threads`` intra-op threads, no spinning."""

    name = "onnx"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 1):
        import onnxruntime as ort

        from . import BackendError

        self.path = Path(path)
        check_file(self.path)
        device = (device or "cpu").strip().lower()
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(f"CAPTCHA_DEVICE is {device!r} but this onnxruntime has no CUDA provider "
                                   "(install onnxruntime-gpu, or use CAPTCHA_BACKEND = 'torch')")
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        elif device not in ("cpu", "auto"):
            raise BackendError(f"CAPTCHA_DEVICE {device!r}: the onnx backend runs on 'cpu' or 'cuda[:N]'")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no "removing initializer" chatter in crawl logs
        if threads > 1:  # idle pool threads would otherwise spin, stealing CPU from the crawl
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise WeightsError(f"{self.path}: not a readable ONNX model (truncated or corrupt?): "
                               f"{exc.__class__.__name__}: {str(exc)[:300]}") from exc
        self.config, self.summary = read_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != self.config.channels:
            raise WeightsError(f"{self.path}: the graph's input {[(i.name, i.shape) for i in inputs]} does not take "
                               f"(N, {self.config.channels}, H, W) images")
        self._input = inputs[0].name
        self._outputs = [outputs[0].name]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a float32 ``(N, C, H, W)`` batch."""
        return self.session.run(self._outputs, {self._input: batch})[0]
