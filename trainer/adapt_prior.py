"""What ``trainer adapt`` adds when a site's labels are few or lopsided: rare characters get seen.

A crawl only accepts captchas the model already reads, so a character it misreads (``I`` read as
``L`` or ``J`` on django-simple-captcha) hardly ever becomes a label, and adapting on the
accepted answers teaches the model that the character is rare. Four remedies, each an option of
``python -m trainer adapt``:

* :func:`repeat_factors` (``--balance``): labelled images holding rare characters are drawn more
  often (repeat-factor sampling, as LVIS does for rare classes);
* :class:`SyntheticPrior` (``--synthetic-share``): a share of every labelled batch is drawn by our
  own renderer (``plain``/``styled`` families) in the site's alphabet, so every character is seen
  with its right label whatever the crawl accepted;
* :func:`known_wrong_penalty` (``--rejected-weight``): the probability of an answer the site
  rejected is pushed down (``-log(1 - p)``), so the model's next reading of that image moves on;
* :class:`DistributionAlignment` (``--align``): the teacher's readings of unlabelled images are
  scaled so that, over many images, each of the site's characters is read about as often as the
  others (ReMixMatch's distribution alignment, frame by frame for CTC): a character the model
  under-reads (``I``) wins the frames where it was a close second, and its pseudo-labels appear.
"""

from __future__ import annotations

import random
from collections import Counter
from statistics import median
from typing import Sequence

import torch
from torch import nn

from scrapy_captcha.answers import AnswerRules
from scrapy_captcha.codec import Codec, Prediction
from scrapy_captcha.image import to_tensor
from scrapy_captcha.model import ModelConfig, decode

#: Renderer families the synthetic prior draws from: our own layouts, plain fonts and styled ones.
SYNTHETIC_MIX = "plain:1,styled:1"


def repeat_factors(labels: Sequence[str]) -> list[float]:
    """How often to draw each labelled image: ``max(1, sqrt(t / f(c)))`` for its rarest character ``c``.

    ``f(c)`` is the share of labels holding ``c`` and ``t`` the median of those shares, so a character
    as common as the median is drawn as before and one ten times rarer about three times as often."""
    if not labels:
        return []
    holding = Counter(c for label in labels for c in set(label))
    share = {c: n / len(labels) for c, n in holding.items()}
    typical = median(share.values())
    return [max([1.0] + [(typical / share[c]) ** 0.5 for c in set(label)]) for label in labels]


class SyntheticPrior:
    """Captchas drawn by our renderer in a site's alphabet, preprocessed for ``config``'s model."""

    def __init__(self, alphabet: str, lengths: tuple[int, int], config: ModelConfig, seed: int = 0, mix: str = SYNTHETIC_MIX):
        from .render import TextSpec, build_drawer

        if not alphabet:
            raise ValueError("the synthetic prior needs an alphabet (--alphabet, or labels to take it from)")
        missing = sorted(set(alphabet) - set(config.alphabet))
        if missing:
            raise ValueError(f"the synthetic prior's alphabet has characters the model cannot write: {''.join(missing)!r}")
        self.config = config
        self.drawer = build_drawer(mix, TextSpec(alphabet, lengths))
        self.rng = random.Random(seed)

    def batch(self, count: int) -> tuple[list[torch.Tensor], list[str]]:
        """``count`` fresh images (floats in [0, 1], as the model reads them) and their texts."""
        images, texts = [], []
        for _ in range(count):
            image, text = self.drawer.draw(self.rng)
            images.append(to_tensor(image, self.config))
            texts.append(text)
        return images, texts


def label_lengths(labels: Sequence[str], fallback: tuple[int, int] = (4, 4)) -> tuple[int, int]:
    """The shortest and longest label: the lengths the synthetic prior draws."""
    return (min(map(len, labels)), max(map(len, labels))) if labels else fallback


def known_wrong_penalty(logits: torch.Tensor, answers: Sequence[str], codec: Codec) -> torch.Tensor:
    """Mean of ``-log(1 - p(answer))`` over a CTC model's outputs, ``answers`` being readings the site rejected.

    ``p`` is the probability of the whole answer (CTC, all alignments): zero when the model no
    longer reads it, large when the model is sure of it. Answers it cannot encode count zero."""
    encodable = [i for i, answer in enumerate(answers) if answer and all(c in codec.alphabet for c in answer)]
    if not encodable:
        return logits.new_zeros(())
    log_probs = logits[encodable].float().log_softmax(-1).transpose(0, 1)  # (T, N, C)
    targets = torch.tensor([k for i in encodable for k in codec.encode(answers[i])])
    frames = torch.full((len(encodable),), logits.shape[1], dtype=torch.long)
    lengths = torch.tensor([len(answers[i]) for i in encodable])
    nll = nn.functional.ctc_loss(log_probs, targets, frames, lengths, blank=0, reduction="none", zero_infinity=True)
    # zero_infinity turns an answer too long for the frames (p = 0) into 0, which would read as p = 1: left out
    log_p = (-nll[nll > 0]).clamp(max=-1e-4)  # p < 1, so the log below stays finite
    return -torch.log1p(-log_p.exp()).sum() / len(encodable)


class DistributionAlignment:
    """Scales a CTC teacher's per-frame character probabilities towards an even use of the site's characters.

    Keeps a running mean of how much probability the readings give each character (``marginal``) and
    multiplies every frame's character probabilities by ``target / marginal``, renormalised so the
    frame keeps its blank probability. Captcha generators draw their characters evenly, so the target
    is uniform over the site's alphabet: the assumption ``--align`` makes, and why it needs
    ``--alphabet``."""

    def __init__(self, size: int, momentum: float = 0.99):
        self.target = torch.full((size,), 1.0 / size)
        self.marginal: torch.Tensor | None = None  # the first batch's, then a running mean
        self.momentum = momentum

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs``: ``(N, T, 1 + size)`` probabilities, class 0 the blank; returns them aligned."""
        characters = probs[..., 1:]
        observed = characters.sum((0, 1))
        observed = observed / observed.sum().clamp_min(1e-12)
        if self.marginal is None:
            self.marginal = observed
        else:
            self.marginal = self.momentum * self.marginal + (1 - self.momentum) * observed
        scaled = characters * (self.target / self.marginal.clamp_min(1e-6))
        scaled = scaled / scaled.sum(-1, keepdim=True).clamp_min(1e-12) * characters.sum(-1, keepdim=True)
        return torch.cat([probs[..., :1], scaled], -1)

    def state_dict(self) -> dict:
        return {"marginal": self.marginal}

    def load_state_dict(self, state: dict) -> None:
        self.marginal = state["marginal"]


def teacher_readings(logits: torch.Tensor, config: ModelConfig, rules: AnswerRules | None,
                     align: DistributionAlignment | None = None) -> list[Prediction]:
    """The teacher's readings of a batch: kept to the site's answers (``rules``), aligned when ``align`` is given."""
    if align is None:
        return rules.decode(logits, config) if rules else decode(logits, config)
    rules = rules or AnswerRules(Codec(config.alphabet), None, one_hot=False)  # the model's own classes
    return rules.read(align(torch.from_numpy(rules.answer_probs(logits))).clamp_min(1e-12).log())
