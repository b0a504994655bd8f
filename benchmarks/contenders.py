"""The solvers compared, behind one small interface: bytes in, text out.

- :class:`TorchContender`: a scrapy-captcha weights file read by :class:`scrapy_captcha.Solver`,
  the path the middleware takes (the bundled CRNN, and the seed's VGG network trained here).
- :class:`DdddocrContender`: ddddocr out of the box (its default ``common_old.onnx`` model), an
  optional extra: :func:`load_ddddocr` returns None with a reason when it is not installed.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import torch

from scrapy_captcha import Solver
from scrapy_captcha.model import count_parameters


class TorchContender:
    """A weights file solved through :class:`scrapy_captcha.Solver`."""

    batch_api = True

    def __init__(self, key: str, label: str, weights: Path):
        self.key, self.label, self.path = key, label, Path(weights)
        self.solver = Solver.from_path(self.path, backend="torch")  # the torch solver; benchmarks/worker.py has the onnx one
        route = getattr(self.solver, "route", None)  # a route (CAPTCHA_WEIGHTS = "auto"): the gate and its two models
        self.files = [route.member(name, "torch") for name in ("gate", "first", "otherwise")] if route else [self.path]
        backends = [self.solver.gate, *(self.solver.expert(n).backend for n in self.solver.experts)] if route else [self.solver.backend]
        self.arch = "route: " + " + ".join(b.config.arch for b in backends) if route else self.solver.config.arch
        self.parameters = sum(count_parameters(b.model) for b in backends)
        # a site that accepts either case: CAPTCHA_ANSWER_CASE = "lower" adds up the two cases' probabilities
        self.lower_rules = self.solver.answer_rules("lower", None)

    @property
    def file_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)

    def solve(self, image: bytes) -> str:
        return self.solver.solve(image).text

    def solve_batch(self, images: Sequence[bytes]) -> list[str]:
        return [p.text for p in self.solver.solve_batch(images)]

    def solve_batch_lower(self, images: Sequence[bytes]) -> list[str]:
        """The answers with ``CAPTCHA_ANSWER_CASE = "lower"``, as a site that accepts either case gets them."""
        return [p.text for p in self.solver.solve_batch(images, self.lower_rules)]


class DdddocrContender:
    """ddddocr's default OCR model, with its own preprocessing, called as scrapers call it."""

    batch_api = False  # ddddocr reads one image per call
    arch = "ddddocr (onnx)"

    def __init__(self) -> None:
        import ddddocr
        import onnxruntime

        self._onnxruntime = onnxruntime
        with contextlib.redirect_stdout(io.StringIO()):  # older versions print an advert
            self.ocr = ddddocr.DdddOcr(show_ad=False)
        engine = getattr(self.ocr, "ocr_engine", None)
        session = getattr(engine, "session", None)
        self.key, self.label = "ddddocr", f"ddddocr {ddddocr_version()}"
        self.path = Path(session._model_path) if session is not None else _default_onnx_path()
        self.parameters = onnx_parameter_count(self.path)
        self._engine = engine

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size

    def set_threads(self, threads: int) -> None:
        """Rebuild the onnxruntime session with ``threads`` intra-op threads."""
        torch.set_num_threads(threads)
        if self._engine is None:
            raise RuntimeError("this ddddocr version has no ocr_engine.session to configure threads on")
        options = self._onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._engine.session = self._onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def solve(self, image: bytes) -> str:
        return self.ocr.classification(image)

    def solve_batch(self, images: Sequence[bytes]) -> list[str]:
        return [self.solve(image) for image in images]


Contender = TorchContender | DdddocrContender


def ddddocr_version() -> str:
    from .machine import version

    return version("ddddocr") or "?"


def load_ddddocr() -> tuple[DdddocrContender | None, str]:
    """ddddocr if it can be imported, else None and why."""
    try:
        return DdddocrContender(), ""
    except ImportError as exc:
        return None, f"ddddocr is not installed ({exc}); `make benchmark-extra` or `pip install ddddocr` adds it"


def _default_onnx_path() -> Path:
    import ddddocr

    return Path(ddddocr.__file__).with_name("common_old.onnx")


# -- parameter count of an ONNX file, without the onnx package -------------------------------
# ModelProto.graph is field 7, GraphProto.initializer field 5, TensorProto.dims field 1 and
# data_type field 2; the parameter count is the sum over initializers of the product of their dims,
# leaving out integer shape constants (INT32/INT64). ddddocr's model is 8-bit quantised, so its
# file holds about one byte per parameter.
_SHAPE_TYPES = {6, 7}


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview):
    """Yield ``(field number, wire type, value)``; value is an int or a memoryview of the bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def onnx_parameter_count(path: Path) -> int | None:
    """Number of values in an ONNX model's initializers (its weights), or None if unreadable."""
    try:
        model = memoryview(Path(path).read_bytes())
        total = 0
        for number, wire, graph in _fields(model):
            if number != 7 or wire != 2:
                continue
            for g_number, g_wire, tensor in _fields(graph):
                if g_number != 5 or g_wire != 2:
                    continue
                size, data_type = 1, None
                for t_number, t_wire, value in _fields(tensor):
                    if t_number == 2:
                        data_type = value
                    if t_number != 1:
                        continue
                    if t_wire == 0:
                        size *= value
                    else:  # packed dims
                        pos = 0
                        while pos < len(value):
                            dim, pos = _varint(value, pos)
                            size *= dim
                if data_type not in _SHAPE_TYPES:
                    total += size
        return total or None
    except (OSError, ValueError, IndexError):
        return None
