"""The solver: image bytes in, text and confidence out, with onnxruntime or torch.

One path for every backend: :func:`~scrapy_captcha.image.to_array` preprocesses, a backend
(:mod:`scrapy_captcha.backends`) runs the model, :mod:`scrapy_captcha.codec` or the answer rules
decode. :func:`load_solver` and :func:`read_answer` are the middleware's: one model shared by the
crawlers of a process, and a capped, timed read of one image. With a batch window (the middleware
uses one), images that several threads submit at about the same time (a crawl whose sessions meet
captchas at once) share one forward pass. On a GPU that is where the gain is; on the 2-core CPU
of the development machine it gave from 0 to 16% more images per second with 4 to 16 threads
solving at once (``micro_batching`` in ``benchmarks/worker.py``), though a batch costs onnxruntime
no less per image than a single image.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .case_prior import CasePrior
from .codec import Codec, Prediction, as_array
from .image import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, ImageInput, load_image, pad_batch, to_array

if TYPE_CHECKING:
    from PIL import Image

    from .answers import AnswerRules
    from .backends import Backend
    from .weights import Weights

#: Longest a solve waits for others to join its batch, and the most images in one batch (defaults).
DEFAULT_BATCH_WINDOW = 0.002
DEFAULT_MAX_BATCH = 32


class Solver:
    """Solves captcha images with one loaded model. Safe to call from several threads.

    ``model`` is a backend (see :func:`scrapy_captcha.backends.load_backend`) or, for the torch
    backend, a loaded :class:`~scrapy_captcha.weights.Weights`. Images are refused over
    ``max_image_bytes`` / ``max_image_pixels`` (:class:`~scrapy_captcha.image.ImageTooLargeError`).
    ``batch_window`` (seconds; ``None``: :data:`DEFAULT_BATCH_WINDOW`; 0: off) and ``max_batch``
    bound the micro-batching of concurrent :meth:`solve` calls; a lone solve never waits. A reading
    less confident than ``views_below`` (0: never) is followed by readings of other views of the
    image, and the reading they agree on is the answer (:meth:`reread`, :mod:`scrapy_captcha.views`).
    ``one_case`` (0: off; CTC models only) gives a letter the case of the reading's other letters when the
    model gave that case at least this share of its probability (:mod:`scrapy_captcha.case_prior`).
    ``blank_penalty`` (0: off; CTC models only) is taken from the CTC blank's logit in every frame before
    decoding, so that a character the blank narrowly outweighs is read rather than dropped.
    """

    def __init__(self, model: Backend | Weights, device: str = "cpu", *,
                 max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
                 max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                 batch_window: float | None = 0.0, max_batch: int = DEFAULT_MAX_BATCH, views_below: float = 0.0,
                 one_case: float = 0.0, blank_penalty: float = 0.0):
        if not hasattr(model, "run"):
            from .backends.torch_backend import TorchBackend

            model = TorchBackend(model, device)  # type: ignore[arg-type]
        self.backend: Backend = model  # type: ignore[assignment]
        self.config = self.backend.config
        self.codec = Codec(self.config.alphabet)
        # what a read without rules follows: the model's own classes (expression symbols kept to expressions)
        self.default_rules = self.answer_rules("exact", None)
        self.caps = {"max_bytes": max_image_bytes, "max_pixels": max_image_pixels}
        self.views_below = views_below
        self.case_prior = CasePrior(self.config.alphabet, one_case) if one_case and self.config.head != "one-hot" else None
        self.blank_penalty = blank_penalty
        self.viewed = 0  # readings that went on to the other views
        if batch_window is None:
            batch_window = DEFAULT_BATCH_WINDOW
        self._batcher = _MicroBatcher(self._forward, batch_window, max_batch) if batch_window > 0 else None

    @classmethod
    def from_path(cls, path: str | Path | None = None, device: str = "cpu", backend: str = "auto",
                  threads: int | None = None, **options) -> "Solver":
        """Load ``path`` (default: the bundled model) with ``backend`` ("auto", "onnx" or "torch").

        A route file (``"auto"``, see :mod:`scrapy_captcha.routing`) gives a
        :class:`~scrapy_captcha.routing.RoutedSolver`, which answers the same calls."""
        from .backends import load_backend
        from .routing import RoutedSolver, is_route
        from .weights import weights_path

        if path is not None and is_route(weights_path(path)):
            return RoutedSolver.from_route(weights_path(path), device, backend, threads, **options)  # type: ignore[return-value]
        return cls(load_backend(path, backend, device, threads), device, **options)

    def answer_rules(self, answer_case: str, alphabet: str | None,
                     lengths: tuple[int, int] | None = None) -> AnswerRules | None:
        """The answer rules of these settings for this model (:func:`~scrapy_captcha.answers.answer_rules`)."""
        from .answers import answer_rules

        return answer_rules(self.config, answer_case, alphabet, lengths)

    @property
    def blank_penalty(self) -> float:
        """What is taken from the CTC blank's logit before decoding (0 for a model without a blank)."""
        return self._blank_penalty

    @blank_penalty.setter
    def blank_penalty(self, value: float) -> None:
        self._blank_penalty = float(value) if self.config.head == "ctc" else 0.0
        self._blank_shift = np.zeros(len(self.config.alphabet) + 1, dtype=np.float32)
        self._blank_shift[0] = self._blank_penalty  # class 0 is the CTC blank

    @property
    def model(self):
        """The torch module (torch backend only)."""
        return self.backend.model  # type: ignore[attr-defined]

    def solve(self, image: ImageInput, rules: AnswerRules | None = None) -> Prediction:
        """Read the text of one captcha image (``rules``: restrict the answers' case or alphabet)."""
        if self._batcher is None:  # one image, one forward pass: none of solve_batch's grouping
            image, array = self._prepare(image)
            return self.reread(image, self.read_array(array, rules), rules)
        self._batcher.starting()  # before preprocessing: a batch being gathered waits for this image
        try:
            image, array = self._prepare(image)
        except BaseException:
            self._batcher.abandoned()
            raise
        return self.reread(image, self._decode(self._batcher.submit(array), rules)[0], rules)

    def read_array(self, array: np.ndarray, rules: AnswerRules | None = None) -> Prediction:
        """Read one image already prepared for this model (``to_array`` with a config of the same
        :attr:`~scrapy_captcha.config.ModelConfig.input_key`): a route prepares an image once."""
        if self._batcher is None:
            return self._decode(self.backend.run(array[None]), rules)[0]
        self._batcher.starting()
        return self._decode(self._batcher.submit(array), rules)[0]

    def solve_batch(self, images: Sequence[ImageInput], rules: AnswerRules | None = None) -> list[Prediction]:
        """Read several images, one forward pass per width.

        Images of the same width (all of them, unless ``config.resize == "height"``) go through the
        model together; different widths are not padded into one batch, so an image reads the same
        whatever else is in its batch.
        """
        prepared = [self._prepare(image) for image in images]
        logits = self._forward([array for _, array in prepared])
        return [self.reread(image, self._decode(row, rules)[0], rules) for (image, _), row in zip(prepared, logits)]

    def _prepare(self, image: ImageInput) -> tuple[Image.Image, np.ndarray]:
        """The decoded image (the caps checked) and the model's array of it; the image is kept for other views."""
        decoded = load_image(image, **self.caps)
        return decoded, to_array(decoded, self.config, max_bytes=None, max_pixels=None)

    def reread(self, image: Image.Image, prediction: Prediction, rules: AnswerRules | None = None) -> Prediction:
        """``prediction`` of the decoded ``image``; when it is less confident than ``views_below``, the reading
        that it and the readings of the image's other views (:func:`~scrapy_captcha.views.other_views`) agree
        on (:func:`~scrapy_captcha.views.agreed_reading`)."""
        if prediction.confidence >= self.views_below:
            return prediction
        from .views import agreed_reading, other_views

        self.viewed += 1
        arrays = [to_array(view, self.config, max_bytes=None, max_pixels=None) for view in other_views(image)]
        best = agreed_reading([prediction, *(self._decode(row, rules)[0] for row in self._forward(arrays))])
        return replace(best, other_views=True)

    def _forward(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each array's logits, ``(1, T, C)``, batching arrays of equal width."""
        groups: dict[int, list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(array.shape[-1], []).append(index)
        logits: list[np.ndarray] = [None] * len(arrays)  # type: ignore[list-item]
        for indices in groups.values():
            output = self.backend.run(pad_batch([arrays[i] for i in indices]))
            for row, index in enumerate(indices):
                logits[index] = output[row:row + 1]
        return logits

    def _decode(self, logits: np.ndarray, rules: AnswerRules | None) -> list[Prediction]:
        rules = rules if rules is not None else self.default_rules
        if self.blank_penalty:
            logits = as_array(logits) - self._blank_shift  # a new array: a batch's rows may share one buffer
        if self.case_prior is not None:
            logits = self.case_prior.apply(as_array(logits))
        if rules is not None:
            return rules.decode(logits, self.config)
        if self.config.head == "one-hot":
            return self.codec.decode_one_hot(logits)
        return self.codec.decode_ctc(logits)


# -- the middleware's model and reads -----------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_solver(path: str, version: tuple[int, int], device: str, backend: str = "auto") -> Solver:
    # read_answer applies the image caps; concurrent solves share forward passes (2 ms window)
    return Solver.from_path(path, device, backend, max_image_bytes=None, max_image_pixels=None, batch_window=None)


def load_solver(path: Path, device: str, backend: str = "auto") -> Solver:
    """The model at ``path`` on ``device``, shared by crawlers of one process (WeightsError if unusable)."""
    try:
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (0, 0)
    return _cached_solver(str(path), version, device, backend)


def read_answer(solver: Solver, rules: AnswerRules | None, data: bytes, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[Prediction, float]:
    """Read one captcha image (blocking: run it in a thread). Returns the prediction and the seconds spent.

    Images over ``max_bytes`` or ``max_pixels`` are refused before decoding (``ImageTooLargeError``)."""
    started = time.perf_counter()
    image = load_image(data, max_bytes=max_bytes, max_pixels=max_pixels)  # InvalidImageError with a reason
    prediction = solver.solve(image, rules)
    return prediction, time.perf_counter() - started


@dataclass(eq=False)
class _Pending:
    array: np.ndarray
    taken: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    logits: np.ndarray | None = None
    error: BaseException | None = None


class _MicroBatcher:
    """Gathers arrays that threads submit at about the same time into one forward pass.

    A solve announces itself (:meth:`starting`) before preprocessing and submits its array after.
    The first submitter with no batch being gathered leads: while announced solves are still
    preprocessing it waits for them, at most ``window`` seconds and ``max_batch`` images, then runs
    the batch for everyone in it. A lone solve never waits.
    """

    def __init__(self, forward, window: float, max_batch: int):
        self._forward = forward
        self._window = window
        self._max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._preparing = 0  # solves announced but not submitted yet
        self._gathering = False
        self.batch_sizes: list[int] = []  # the latest batches' sizes (at most 1000), for benchmarks

    def starting(self) -> None:
        with self._cond:
            self._preparing += 1

    def abandoned(self) -> None:
        """A solve that announced itself failed before submitting (a bad image)."""
        with self._cond:
            self._preparing -= 1
            self._cond.notify_all()

    def submit(self, array: np.ndarray) -> np.ndarray:
        """The logits of ``array``, computed in whichever batch it lands in."""
        item = _Pending(array)
        with self._cond:
            self._preparing -= 1
            self._pending.append(item)
            self._cond.notify_all()
        while not item.taken:
            with self._cond:
                while not item.taken and self._gathering:
                    self._cond.wait()
                if item.taken:
                    break
                self._gathering = True
                deadline = time.monotonic() + self._window
                while self._preparing > 0 and len(self._pending) < self._max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
                for pending in batch:
                    pending.taken = True
                self._gathering = False
                self._cond.notify_all()
            self._run(batch)
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.logits  # type: ignore[return-value]

    def _run(self, batch: list[_Pending]) -> None:
        self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
        try:
            outputs = self._forward([item.array for item in batch])
        except BaseException as exc:  # every solve in the batch gets the error
            for item in batch:
                item.error = exc
                item.done.set()
            return
        for item, logits in zip(batch, outputs):
            item.logits = logits
            item.done.set()
