"""What each site taught the crawl, and the file that keeps it for the next crawl (``CAPTCHA_LEARN_FILE``).

:class:`SiteKnowledge` joins, for the middleware, the two things a site's verdicts teach:
:mod:`scrapy_captcha.learning` (the length, case and kind of its answers) and
:mod:`scrapy_captcha.model_trial` (which of the route's models reads it better).
:meth:`~SiteKnowledge.read` reads a captcha of a site with what the site taught, and
:meth:`~SiteKnowledge.verdict` takes the site's verdict on the answer.

A site teaches its shape in 8 to 64 accepted answers and the route's trial in about 200 captchas
where it runs; a crawl that runs every day, or stops and resumes, would learn all of it again, and
a crawl of fewer captchas than that never would. With a learn file (``CAPTCHA_LEARN_FILE``; by
default ``captcha-learned.json`` in ``JOBDIR`` when the crawl has one) what each site taught is read
at start-up, written when a site's shape or trial is decided or forgotten (at most every
:data:`SAVE_EVERY` seconds) and when the spider closes (its answers so far too). Each write is whole
(:mod:`scrapy_captcha.learn_file`: never half-written) and puts what the sites this crawl met taught
over what the file holds by then, so that crawls sharing one file at once (a project's spiders of
several sites) keep each other's sites. A trial's outcome is kept only while the route's models are
the same files (a file from other models keeps the shapes and starts the trials again). A file that
is not one of ours stops the crawl at start-up with an error naming it, and is left as it is.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import learn_file
from .codec import Prediction
from .errors import CaptchaSettingsError
from .learning import FORGET_AFTER, SiteLearning
from .model_trial import FIRST, OTHERWISE, TRIAL_CAPTCHAS, ModelTrials

__all__ = ["LEARN_FILE_FORMAT", "LEARN_FILE_NAME", "SiteKnowledge", "models_id", "rules_builder"]

logger = logging.getLogger(__name__)

LEARN_FILE_FORMAT, LEARN_FILE_NAME = learn_file.FORMAT, learn_file.NAME_IN_JOBDIR
#: Seconds at least between two writes of the learn file mid-crawl: a broad crawl decides something for
#: thousands of sites, and each write is the whole file. The spider's close writes it in any case.
SAVE_EVERY = 30.0

#: Reads a captcha with the given answer rules; ``answered``: the reading is the answer (count it as such).
Read = Callable[[Any, bool], Awaitable[Prediction]]


def rules_builder(solver: Any) -> Callable[[str, tuple[int, int] | None, str | None], Any]:
    """The answer rules of a learned shape, for :class:`~scrapy_captcha.learning.SiteLearning`: ``solver.answer_rules``,
    with a route's model that cannot keep to the shape named in the learning line, not warned of as the settings' fault."""
    if getattr(solver, "route", None) is None:
        return lambda case, lengths, alphabet: solver.answer_rules(case, alphabet, lengths)
    return lambda case, lengths, alphabet: solver.answer_rules(case, alphabet, lengths, warn=False)


def models_id(solver: Any) -> str | None:
    """What identifies a route's two models (a digest of their files); ``None`` for one model, which has no trial."""
    route = getattr(solver, "route", None)
    if route is None:
        return None
    digest = hashlib.sha256()
    for member in (route.first, route.otherwise):
        for path in sorted(member.with_suffix(suffix) for suffix in (".onnx", ".pt")):
            if path.is_file():
                digest.update(path.name.encode())
                with path.open("rb") as file:
                    for block in iter(lambda: file.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()


class SiteKnowledge:
    """Each site's learned shape and model trial (see the module docstring).

    ``inc(key, count=1)`` counts a stat under the middleware's prefix; ``extra()`` is the logging ``extra`` of its lines.
    """

    def __init__(self, solver: Any, learning: SiteLearning, trials: ModelTrials | None, inc: Callable[..., None],
                 extra: Callable[[], dict[str, Any]] = dict, learn_file: Path | None = None):
        self.solver, self.learning, self.trials = solver, learning, trials
        self.inc, self.extra, self.learn_file = inc, extra, learn_file
        self._otherwise_model = solver.route.otherwise.name if trials is not None else ""
        self._one_model: dict[int, tuple[Any, Any]] = {}  # the rules that skip the gate, by the rules they come from
        self._models = models_id(solver) if learn_file is not None else None
        self._saved_at = -SAVE_EVERY  # monotonic time of the last write: none yet
        self._met: set[str] = set()  # the sites this crawl gave verdicts of: what it writes over the file

    # -- reading and verdicts --

    async def read(self, site: str, read: Read) -> tuple[Prediction, str | None]:
        """Read a captcha of ``site`` with what the site taught; also the trial's arm it belongs to (or None)."""
        rules = self.learning.rules(site)
        if self.trials is None or getattr(rules, "unable", None):  # one model alone can answer: nothing to try
            return await read(rules, True), None
        if self.trials.goes_to_otherwise(site):
            return await read(self.one_model_rules(rules), True), None
        prediction = await read(rules, False)
        arm = self.trials.arm(site, prediction.model)
        if arm == OTHERWISE:
            prediction = await read(self.one_model_rules(rules), False)
        if prediction.model:
            self.inc(f"read_by/{prediction.model}")
        return prediction, arm

    def one_model_rules(self, rules: Any) -> Any:
        """``rules`` that send every image to the route's generalist (``otherwise``) model."""
        cached = self._one_model.get(id(rules))
        if cached is None or cached[0] is not rules:
            cached = self._one_model[id(rules)] = (rules, self.solver.one_model_rules(rules, OTHERWISE))
        return cached[1]

    def verdict(self, site: str, arm: str | None, accepted: bool, text: str | None = None) -> None:
        """The site's verdict on an answer: ``text`` is the accepted captcha's text (``None`` for an arithmetic
        result); rejected answers and readings too unsure to send are both ``accepted=False``."""
        changed = False
        self._met.add(site)
        if self.trials is not None and (outcome := self.trials.verdict(site, arm, accepted)):
            to_generalist, changed = self.trials.goes_to_otherwise(site), True
            self.inc("trial/" + ("otherwise" if to_generalist else "gate"))
            logger.info("%s: of %d captchas the gate gave %s, %d answers were accepted, and %d of %d read by %s instead: %s "
                        "(CAPTCHA_LEARN_AFTER)", site, TRIAL_CAPTCHAS, self.trials.first_model, outcome[FIRST], outcome[OTHERWISE],
                        TRIAL_CAPTCHAS, self._otherwise_model,
                        f"every captcha of the site goes to {self._otherwise_model} from now on" if to_generalist
                        else "the gate keeps choosing", extra=self.extra())
        if accepted and text is not None and (shape := self.learning.accepted(site, text)):
            self.inc("learned")
            changed = True
            logger.info("%s: its %d accepted answers show %s; its captchas are read keeping to that from now on%s (CAPTCHA_LEARN_AFTER)",
                        site, self.learning.accepted_answers(site), shape.describe(), self._only_able(site), extra=self.extra())
        elif not accepted and (shape := self.learning.rejected(site)):
            self.inc("forgotten")
            changed = True
            if self.trials is not None:
                self.trials.forget(site)
            logger.warning("%s rejected (or left unsent) %d answers in a row: no longer reading its captchas as %s (learning again)",
                           site, FORGET_AFTER, shape.describe(), extra=self.extra())
        if changed and time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def _only_able(self, site: str) -> str:
        """Where one of a route's models cannot keep to what ``site`` taught: which reads every captcha of it."""
        unable = getattr(self.learning.rules(site), "unable", None)
        if not unable:
            return ""
        able = next(name for name in ("first", "otherwise") if name not in unable)
        return f", all by {getattr(self.solver.route, able).name}, the only model of the route that can"

    # -- the learn file --

    def load(self) -> None:
        """Read the learn file, if there is one; :class:`CaptchaSettingsError` naming it if it is not ours or is damaged."""
        path = self.learn_file
        if path is None:
            return
        try:
            data = learn_file.read(path)
        except learn_file.LearnFileError as exc:
            raise self._file_error(str(exc)) from exc
        if data is None:
            return
        sites, trials = data["sites"], data["trials"]
        same_models = self.trials is not None and data.get("models") == self._models
        try:
            shaped = self.learning.restore(sites)
            if same_models:
                self.trials.restore(trials)
        except ValueError as exc:
            raise self._file_error(f"is damaged: {exc}") from exc
        to_generalist = {site for site in trials if self.trials.goes_to_otherwise(site)} if same_models else set()
        if shaped or to_generalist:
            self.inc("remembered", len(set(shaped) | to_generalist))
        other_models = " (its trials were of other models: they start again)" if self.trials is not None and trials and not same_models else ""
        logger.info("CAPTCHA_LEARN_FILE %s: %d sites known from earlier crawls, %d read with the shape they taught, %d by the "
                    "generalist alone%s", path, len(sites), len(shaped), len(to_generalist), other_models, extra=self.extra())

    def save(self) -> None:
        """Write the learn file: what it holds now (another crawl sharing it may have written since this one read it),
        with what this crawl's sites taught over it; whole, by renaming a temporary file over it, under its lock."""
        path = self.learn_file
        if path is None:
            return
        self._saved_at = time.monotonic()
        try:
            with learn_file.locked(path):
                try:
                    current = learn_file.read(path) or {"sites": {}, "trials": {}}
                except learn_file.LearnFileError as exc:  # replaced by something else since the start: not overwritten
                    logger.error("CAPTCHA_LEARN_FILE %s %s now; it is left as it is, and what the sites taught is kept in memory",
                                 path, exc, extra=self.extra())
                    return
                # the sites this crawl met, as it knows them now (a forgotten trial or shape goes); the others as the file has them
                sites = {site: data for site, data in current["sites"].items() if site not in self._met}
                sites.update(self.learning.state(self._met))
                trials = {site: data for site, data in current["trials"].items() if site not in self._met} \
                    if current.get("models") == self._models else {}
                if self.trials is not None:
                    trials.update(self.trials.state(self._met))
                learn_file.write(path, self._models, sites, trials)
        except OSError as exc:
            logger.error("CAPTCHA_LEARN_FILE %s could not be written (%s); what the sites taught is kept in memory",
                         path, exc, extra=self.extra())

    def _file_error(self, what: str) -> CaptchaSettingsError:
        return CaptchaSettingsError(f"CAPTCHA_LEARN_FILE {str(self.learn_file)!r} {what}; move it away (or delete it to learn "
                                    "every site again) or point CAPTCHA_LEARN_FILE elsewhere")
