"""More views of one captcha, for a model unsure of its reading.

A model that never saw a site's style often reads it better a little wider, narrower, with a margin
or with its top and bottom trimmed: the style's proportions then come nearer to those it learnt. It
also often reads text struck through by thin lines or arcs better once they are wiped out (the
``opened`` view). :func:`other_views` draws those five views; :meth:`~scrapy_captcha.solver.Solver.reread` reads
them when the first reading's confidence is under the solver's ``views_below`` and takes the reading
the views agree on (:func:`agreed_reading`): a vote of the six readings, character by character,
each reading weighted by its confidence. On our own mix the vote read 0.9 points more than the most
confident reading alone, and 0.1 more than a vote of whole readings (README, "The bundled route"). The bundled route does so for the generalist
(``otherwise_views_below`` in ``weights/auto.json``), whose readings of unseen styles are often
unsure; a confident reading costs nothing more.
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Sequence, TypeVar

import numpy as np
from PIL import Image, ImageOps

from .arithmetic import SYMBOLS, is_expression
from .codec import Prediction
from .image import _flatten, border_median

Key = TypeVar("Key", bound=Hashable)


def _margin(image: Image.Image) -> Image.Image:
    """A border of the corner's colour: 6% of the width each side, 15% of the height above and below."""
    return ImageOps.expand(image, border=(round(image.width * 0.06), round(image.height * 0.15)),
                           fill=image.getpixel((0, 0)))


def _trimmed(image: Image.Image) -> Image.Image:
    """8% of the height cut from the top and from the bottom."""
    cut = round(image.height * 0.08)
    return image.crop((0, cut, image.width, image.height - cut)) if image.height - 2 * cut >= 8 else image


def _stretched(factor: float) -> Callable[[Image.Image], Image.Image]:
    def stretch(image: Image.Image) -> Image.Image:
        return image.resize((max(8, round(image.width * factor)), image.height), Image.Resampling.BILINEAR)
    return stretch


def _opened(image: Image.Image) -> Image.Image:
    """Grey, dark ink on light, with every stroke thinner than 3 pixels wiped out: the ink thinned by a
    3x3 square, then thickened back (an opening). A thin line or arc drawn through the text goes; the
    text's own strokes, thicker, stay. An image under 40 pixels high is first doubled, so that its
    strokes are not that thin."""
    grey = image.convert("L")
    if border_median(np.asarray(grey)) < 128:
        grey = ImageOps.invert(grey)  # light ink on a dark background
    if grey.height < 40:
        grey = grey.resize((grey.width * 2, grey.height * 2), Image.Resampling.BILINEAR)
    return Image.fromarray(_square_filter(_square_filter(np.asarray(grey), np.maximum), np.minimum)).convert("RGB")


def _square_filter(pixels: np.ndarray, pick: np.ufunc) -> np.ndarray:
    """The max (``np.maximum``) or min (``np.minimum``) of each pixel's 3x3 square, edges repeated: what
    Pillow's ``MaxFilter(3)`` / ``MinFilter(3)`` give, pixel for pixel, about 50 times faster (Pillow
    sorts each square; two passes of three shifted rows and columns do not)."""
    height, width = pixels.shape
    padded = np.pad(pixels, 1, mode="edge")
    rows = pick(pick(padded[:, :width], padded[:, 1:width + 1]), padded[:, 2:])
    return pick(pick(rows[:height], rows[1:height + 1]), rows[2:])


#: The views besides the image as given, by name.
VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "margin": _margin, "trimmed": _trimmed, "wider": _stretched(1.25), "narrower": _stretched(0.8),
    "opened": _opened}


def other_views(image: Image.Image) -> list[Image.Image]:
    """The :data:`VIEWS` of a decoded image (transparency composited over white first)."""
    image = _flatten(image, "RGB")
    return [view(image) for view in VIEWS.values()]


def _most_supported(items: Iterable[tuple[Key, float]]) -> Key:
    """The key whose weights add up to the most; the earliest of equals."""
    support: dict[Key, float] = {}
    for key, weight in items:  # a dict keeps the order first seen: max() then favours the earliest key
        support[key] = support.get(key, 0.0) + weight
    return max(support, key=support.__getitem__)


def whole_reading_vote(predictions: Sequence[Prediction]) -> Prediction:
    """The text whose readings' confidences add up to the most, as its most confident reading; the earliest
    of equals (the image as given comes first)."""
    text = _most_supported((p.text, p.confidence) for p in predictions)
    return max((p for p in predictions if p.text == text), key=lambda prediction: prediction.confidence)


def agreed_reading(predictions: Sequence[Prediction]) -> Prediction:
    """The readings' vote, character by character, each reading weighted by its confidence.

    First the length whose readings add up to the most; then, among readings of that length, at each
    place the character whose readings add up to the most (the earliest of equals: the image as
    given comes first). Views that each misread a different character still agree on the rest.
    A text one of the readings holds is returned as its most confident reading; a new combination
    takes at each place the best confidence of the character there, and their product. A
    combination that holds an arithmetic symbol without being an expression is not made: the vote
    of whole readings (:func:`whole_reading_vote`) decides then.
    """
    length = _most_supported((len(p.text), p.confidence) for p in predictions)
    same = [p for p in predictions if len(p.text) == length]
    text = "".join(_most_supported((p.text[place], p.confidence) for p in same) for place in range(length))
    readings = [p for p in same if p.text == text]
    if readings:
        return max(readings, key=lambda prediction: prediction.confidence)
    if any(symbol in text for symbol in SYMBOLS) and not is_expression(text):
        return whole_reading_vote(predictions)
    confidences = tuple(max(p.char_confidences[place] for p in same if p.text[place] == char)
                        for place, char in enumerate(text))
    return Prediction(text, float(np.prod(confidences, dtype=np.float64)), confidences)
