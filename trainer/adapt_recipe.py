"""``trainer adapt``'s knobs: the run's configuration, the recipe chosen by the folder, what the labels teach.

The recipe (learning rate, augmentation of the labelled images, steps on them alone) follows the
folder: hand labels for a model that reads the site badly move it far, accepted answers alone a little
(:func:`recipe`). The labels' length, case and kind of characters keep the teacher's readings to them,
by the middleware's rule (:func:`learned_rules`, :mod:`scrapy_captcha.learning`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from scrapy_captcha.learning import KIND_ALPHABETS, LEARN_AFTER, answer_shape

from .adapt_data import Pool
from .precision import check_precision

__all__ = ["HAND_RECIPE", "READS_THE_SITE", "RECORDING_RECIPE", "AdaptConfig", "check", "learned_rules", "recipe"]


@dataclass
class AdaptConfig:
    """Every knob of an adapt run; saved into ``metrics.json``."""

    folder: str
    out: str
    weights: str | None = None  # None: "auto", the route's model for the recording's style (as the crawl read it)
    labels: list[str] = field(default_factory=list)  # more labelled folders
    steps: int = 300
    batch_size: int = 32
    unlabelled_ratio: int = 2  # unlabelled images per labelled one in a step
    # None: chosen by the folder (see :func:`recipe`)
    lr: float | None = None
    threshold: float = 0.9  # teacher confidence above which a reading becomes a target
    unlabelled_weight: float = 1.0
    ema: float = 0.99
    supervised_share: float | None = None  # first share of the steps on labelled images alone (no teacher readings yet)
    labelled_augmentation: str | None = None  # "weak" or "strong": a few hundred labels overfit under light changes
    holdout: float = 0.15
    # the site's characters and case (as CAPTCHA_ALPHABET, CAPTCHA_ANSWER_CASE): the teacher's readings keep to them
    alphabet: str | None = None
    answer_case: str = "as-is"
    answer_length: tuple[int, int] | None = None  # the site's answer lengths (as CAPTCHA_ANSWER_LENGTH): readings keep to them
    # as CAPTCHA_LEARN_AFTER: the length, case and kind of characters the labels show, readings keep to unless told; 0: never
    learn_after: int = LEARN_AFTER
    balance: bool = False  # draw labelled images holding rare characters more often (adapt_prior.repeat_factors)
    synthetic_share: float = 0.0  # images our renderer draws in the alphabet, per labelled image of a step
    rejected_weight: float = 0.0  # weight of the penalty on the probability of rejected answers
    align: bool = False  # teacher's readings aligned to an even use of the alphabet's characters (needs alphabet)
    eval_every: int = 50
    seed: int = 0
    resume: bool = False
    device: str = "cpu"
    precision: str = "auto"  # as ``trainer train --precision``: "bf16" autocast, "fp32", "auto" (bf16 on a GPU only)
    progress: bool = True


#: The recipe for a folder with hand labels (or ``--labels`` folders): a model that read the site badly
#: (why there are hand labels) must move far from its start on a few hundred labels, so a higher
#: learning rate, strong augmentation of the labels, and the first 30% of the steps on labels alone
#: (its readings of the unlabelled images are mostly wrong until then). Measured on the demo's
#: ``night`` style with 150 hand labels (README, "Measured: the rounds curve").
HAND_RECIPE = {"lr": 3e-3, "supervised_share": 0.3, "labelled_augmentation": "strong"}
#: The recipe for accepted answers alone (the loop without hand labels): the model already reads
#: these images, so it moves a little, and the teacher's readings count from the start.
RECORDING_RECIPE = {"lr": 1e-3, "supervised_share": 0.0, "labelled_augmentation": "weak"}
#: Held-out accuracy at the start from which hand labels get :data:`RECORDING_RECIPE` too: a start that
#: already reads the site (the generalist reads 55-64% of ``night``'s held-out hand labels) loses to the
#: hand recipe's big steps (README, "Hand labels from a start that reads the site").
READS_THE_SITE = 0.3


def recipe(cfg: AdaptConfig, pool: Pool, start_accuracy: float | None = None) -> AdaptConfig:
    """``cfg`` with the knobs left at None set from the folder: :data:`HAND_RECIPE` where a person labelled
    images and the starting model reads under :data:`READS_THE_SITE` of the held-out labels
    (``start_accuracy``, None when unknown), else :data:`RECORDING_RECIPE`."""
    by_hand = any(source != "accepted" for _, _, source in pool.labelled)
    reads_the_site = start_accuracy is not None and start_accuracy >= READS_THE_SITE
    chosen = HAND_RECIPE if by_hand and not reads_the_site else RECORDING_RECIPE
    cfg = replace(cfg, **{key: value for key, value in chosen.items() if getattr(cfg, key) is None})
    return check(cfg)


def learned_rules(cfg: AdaptConfig, pool: Pool, model_alphabet: str) -> AdaptConfig:
    """``cfg`` keeping to the answer length, case and kind of characters all the labels share (what the
    middleware learns from a site's accepted answers, :mod:`scrapy_captcha.learning`), where ``cfg`` does
    not set them. A learned kind restricts the readings to the model's characters of that kind (growing none)."""
    shape = answer_shape([label for _, label, _ in pool.labelled], cfg.learn_after)
    if not shape:
        return cfg
    learned: dict[str, Any] = {}
    if shape.length is not None and cfg.answer_length is None:
        learned["answer_length"] = (shape.length, shape.length)
    if shape.case is not None and cfg.answer_case == "as-is":
        learned["answer_case"] = shape.case
    if shape.kind is not None and cfg.alphabet is None:
        learned["alphabet"] = "".join(c for c in model_alphabet if c in KIND_ALPHABETS[shape.kind])
    if learned:
        names = {"answer_length": "their length", "answer_case": "their case", "alphabet": f"{shape.kind} only"}
        print(f"the {len(pool.labelled)} labels show {shape.describe()}: the teacher's readings keep to "
              + ", ".join(names[key] for key in learned) + " (--learn-after 0: not)", flush=True)
    return replace(cfg, **learned)


def check(cfg: AdaptConfig) -> AdaptConfig:
    """``cfg`` if its knobs make sense, else a ValueError naming the one at fault."""
    check_precision(cfg.precision)
    if cfg.answer_case not in ("as-is", "lower", "upper"):
        raise ValueError(f"answer_case must be 'as-is', 'lower' or 'upper', got {cfg.answer_case!r}")
    if cfg.align and not cfg.alphabet:
        raise ValueError("--align needs --alphabet: it evens out the readings of the characters the site draws")
    if cfg.learn_after < 0:
        raise ValueError(f"learn_after must be 0 (never) or more, got {cfg.learn_after}")
    if cfg.synthetic_share < 0 or cfg.rejected_weight < 0:
        raise ValueError("synthetic_share and rejected_weight must not be negative")
    if cfg.labelled_augmentation not in ("weak", "strong", None):
        raise ValueError(f"labelled_augmentation must be 'weak' or 'strong', got {cfg.labelled_augmentation!r}")
    return cfg
