"""Which of a route's models reads a site better, tried on the site's own verdicts (``CAPTCHA_LEARN_AFTER``).

The route's gate sends each image to the default model when it looks like the ``captcha``
library's style, else to the generalist. On a site whose images only half look like that style the
gate's choice can cost: on easy-captcha's simple style (its length learned) the route answers 30%
of the images with the default model, which reads 52% of those where the generalist reads 69%
(README, "The site's length and case, from its verdicts"). The site's verdicts can tell, if the two models are tried on the same kind of
images: among a site's captchas that the gate gives the default model, every other one is read by
the generalist instead, until each model has :data:`TRIAL_CAPTCHAS` verdicts. If the generalist's
answers were accepted at least :data:`TRIAL_MARGIN` times more, every later captcha of the site
goes to the generalist; otherwise the gate keeps choosing and the trial is over.

With 32 captchas a model the generalist took easy-captcha's simple style in each of 21 orders of a
600-captcha crawl, and never took the ``captcha`` library's own style on a case-sensitive site (30
orders of 2,000 captchas), where the trial cost 0 to 4 accepted answers, 1.9 on average
(``python -m benchmarks.learned_rules``, ``--seed-style data/test-0.7.1 --orders 30``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

__all__ = ["FIRST", "OTHERWISE", "TRIAL_CAPTCHAS", "TRIAL_MARGIN", "ModelTrials"]

#: Verdicts each model gets in a site's trial.
TRIAL_CAPTCHAS = 32
#: How many more of the generalist's answers must be accepted for the site to go to it.
TRIAL_MARGIN = 3
#: The arms: the gate's choice kept (the default model), or the generalist instead.
FIRST, OTHERWISE = "first", "otherwise"


def _per_arm() -> dict[str, int]:
    return {FIRST: 0, OTHERWISE: 0}


@dataclass
class _Trial:
    turn: int = 0  # captchas of the default model's style met so far
    met: dict[str, int] = field(default_factory=_per_arm)  # verdicts per arm
    accepted: dict[str, int] = field(default_factory=_per_arm)
    outcome: str | None = None  # None while the trial runs; then FIRST (the gate decides) or OTHERWISE


class ModelTrials:
    """Each site's trial of a route's models (see the module docstring).

    ``first_model`` is the member name of the route's ``first`` model (``Prediction.model`` of its readings).
    """

    def __init__(self, first_model: str):
        self.first_model = first_model
        self._trials: dict[str, _Trial] = {}

    def goes_to_otherwise(self, site: str) -> bool:
        """Whether every captcha of ``site`` goes to the generalist."""
        trial = self._trials.get(site)
        return trial is not None and trial.outcome == OTHERWISE

    def started(self, site: str) -> bool:
        """Whether the gate gave ``site``'s default model a captcha, so that a trial began."""
        return site in self._trials

    def arm(self, site: str, model: str) -> str | None:
        """The arm of a captcha of ``site`` that the route read with ``model``: :data:`OTHERWISE` means read it
        again with the generalist and submit that; ``None``: no trial runs for it."""
        if model != self.first_model:
            return None
        trial = self._trials.setdefault(site, _Trial())
        if trial.outcome is not None:
            return None
        arm = (FIRST, OTHERWISE)[trial.turn % 2]
        if trial.met[arm] >= TRIAL_CAPTCHAS:  # this arm is full while verdicts of the other are pending
            arm = FIRST if arm == OTHERWISE else OTHERWISE
        trial.turn += 1
        return arm

    def verdict(self, site: str, arm: str | None, accepted: bool) -> dict[str, int] | None:
        """Count the verdict of a trial captcha; when it ends the trial, the answers accepted of each arm."""
        trial = self._trials.get(site)
        if arm is None or trial is None or trial.outcome is not None or trial.met[arm] >= TRIAL_CAPTCHAS:
            return None
        trial.met[arm] += 1
        trial.accepted[arm] += accepted
        if min(trial.met.values()) < TRIAL_CAPTCHAS:
            return None
        trial.outcome = OTHERWISE if trial.accepted[OTHERWISE] - trial.accepted[FIRST] >= TRIAL_MARGIN else FIRST
        return dict(trial.accepted)

    def forget(self, site: str) -> None:
        """Start ``site``'s trial again (its captchas changed)."""
        self._trials.pop(site, None)

    def state(self, sites: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Every site's trial (or each of ``sites``' that has one) as JSON-ready data (:meth:`restore` reads it back)."""
        chosen = self._trials if sites is None else {site: self._trials[site] for site in sites if site in self._trials}
        return {site: asdict(trial) for site, trial in chosen.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state` gave; ``ValueError`` names the site whose data is wrong."""
        for site, data in state.items():
            try:
                self._trials[site] = _read_trial(data)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"site {site!r}: trial: {exc}") from None


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"counts must be whole numbers, got {value!r}")
    return value


def _read_trial(data: dict[str, Any]) -> _Trial:
    if not isinstance(data, dict) or set(data) != {"turn", "met", "accepted", "outcome"}:
        raise ValueError(f"expected turn, met, accepted and outcome, got {data!r}")
    if data["outcome"] not in (None, FIRST, OTHERWISE):
        raise ValueError(f"outcome must be null, {FIRST!r} or {OTHERWISE!r}, got {data['outcome']!r}")
    arms = {}
    for name in ("met", "accepted"):
        if not isinstance(data[name], dict) or set(data[name]) != {FIRST, OTHERWISE}:
            raise ValueError(f"{name} must count {FIRST!r} and {OTHERWISE!r}, got {data[name]!r}")
        arms[name] = {arm: min(_count(count), TRIAL_CAPTCHAS) for arm, count in data[name].items()}
    return _Trial(_count(data["turn"]), arms["met"], arms["accepted"], data["outcome"])
