"""Changes to trained weights: a grown alphabet (``trainer adapt``, a site's labels with characters the model
lacks) and more CTC frames per column (``train --init W --frames-per-column K``), both keeping what the model
reads; and the mean of two runs' weights (``trainer average``)."""

from __future__ import annotations

import torch

from scrapy_captcha.model import ModelConfig
from scrapy_captcha.weights import Weights

#: A character the starting model already writes that a new one looks like: its output row is the new
#: one's starting point (the seed alphabet lacks l, o, I, O; models read them as 1, 0 until told).
LOOKALIKES = {"O": "0", "o": "0", "I": "1", "l": "1", "0": "O", "1": "l", "Q": "O", "D": "0", "S": "5", "Z": "2", "B": "8",
              "G": "6", "i": "j", "×": "x", "÷": "+", "*": "x", "=": "-"}


def grow_alphabet(weights: Weights, labels: list[str]) -> tuple[Weights, str]:
    """Weights whose head also reads the characters of ``labels`` it lacked; returns them and the new characters."""
    config = weights.config
    new = "".join(sorted({c for label in labels for c in label} - set(config.alphabet)))
    if not new:
        return weights, ""
    if config.head != "ctc":
        raise ValueError(f"labels use characters the {config.arch} model lacks ({new!r}); only a CRNN's alphabet can grow")
    state = dict(weights.state_dict)
    frames, classes = config.frames_per_column, len(config.alphabet) + 1
    # the classifier's rows, one block of classes per frame of a column (CRNN.classify)
    weight = state["classify.weight"].reshape(frames, classes, -1)
    bias = state["classify.bias"].reshape(frames, classes)
    rows = [1 + config.alphabet.index(twin) if twin and twin in config.alphabet else None  # row 0 is the CTC blank
            for twin in (LOOKALIKES.get(char) for char in new)]
    new_weight = torch.stack([weight[:, row] if row else weight[:, 1:].mean(1) for row in rows], dim=1)
    new_bias = torch.stack([bias[:, row] if row else bias[:, 1:].mean(1) for row in rows], dim=1)
    # a look-alike's copy, a little less likely than it, so the site's labels decide between the two
    state["classify.weight"] = torch.cat([weight, new_weight + 0.01 * torch.randn_like(new_weight)], dim=1).flatten(0, 1)
    state["classify.bias"] = torch.cat([bias, new_bias - 0.5], dim=1).flatten()
    grown = ModelConfig.from_dict({**config.to_dict(), "alphabet": config.alphabet + new})
    return Weights(grown, state, weights.summary), new


def more_frames_per_column(weights: Weights, frames: int) -> Weights:
    """A CRNN of one frame per column as one of ``frames``: each frame a copy of the column's one, so
    it reads as before (CTC merges a character repeated on neighbouring frames) until training splits them."""
    config = weights.config
    if config.arch != "crnn" or config.frames_per_column != 1:
        raise ValueError(f"only a CRNN with one frame per column can be widened to {frames}, not a {config.arch} "
                         f"with {config.frames_per_column}")
    state = dict(weights.state_dict)
    state["classify.weight"] = state["classify.weight"].repeat(frames, 1)
    state["classify.bias"] = state["classify.bias"].repeat(frames)
    widened = ModelConfig.from_dict({**config.to_dict(), "frames_per_column": frames})
    return Weights(widened, state, weights.summary)


def average_weights(first: Weights, second: Weights, share: float = 0.5) -> Weights:
    """``(1 - share) * first + share * second``, tensor by tensor: two runs of one model, one fine-tuned from the
    other or both from one start (unrelated runs average into noise). Counters (integer tensors such as a batch
    norm's ``num_batches_tracked``) are ``first``'s."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the second file's share must be within 0..1, not {share}")
    if first.config != second.config:
        mine, theirs = first.config.to_dict(), second.config.to_dict()
        differ = sorted(k for k, v in mine.items() if theirs.get(k) != v)
        raise ValueError(f"the two weights files are not one model: their settings differ in {', '.join(differ)}")
    if first.state_dict.keys() != second.state_dict.keys():
        raise ValueError("the two weights files are not one model: their tensors differ")
    state = {}
    for name, tensor in first.state_dict.items():
        other = second.state_dict[name]
        if tensor.shape != other.shape:
            raise ValueError(f"the two weights files are not one model: {name} is {tuple(tensor.shape)} and {tuple(other.shape)}")
        state[name] = torch.lerp(tensor, other.to(tensor.dtype), share) if tensor.is_floating_point() else tensor.clone()
    summary = {"averaged": {"first": first.summary, "second": second.summary, "second_share": share}}
    return Weights(first.config, state, summary)
