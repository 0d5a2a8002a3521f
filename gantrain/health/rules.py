"""The health rules: one function per cause that judges the history as it stood at one
log step, and says why (in plain words, with the numbers) and the Hydra overrides to try.

Five causes (``diagnose.CAUSES``), each a rule over the ``health/`` tags (health.md) and the
losses; every threshold is a field of ``Thresholds`` (thresholds.py):

* ``d_won``: D separates real from fake (``d_acc_real``, ``d_acc_fake`` >= acc_high; or
  ``loss/d`` <= d_loss_floor on runs without accuracy tags) AND G is starved (its gradient
  norm below grad_vanish_ratio of its early median, or ``loss/g`` risen by loss_g_rise):
  the vanishing gradient of an optimal D (Arjovsky & Bottou 2017, thm. 2.4).
* ``mode_collapse``: ``diversity`` (pairwise feature distance of fixed samples over that
  of real images) below diversity_low and below diversity_drop of its best so far; or the
  judge's class-histogram entropy fell the same way (Salimans et al. 2016).
* ``divergence``: a loss or gradient norm grew by its factor over its early median, or a
  weight norm by its factor over its first point (the initial weights: the monitor logs
  them at step 0), or one is NaN/inf.
* ``d_overfits``: D's accuracy on held-out reals is heldout_gap below that on training
  reals; or, without held-out images, ADA's r_t = E[sign(D(real) - boundary)] >= rt_high
  on a training set of at most small_data_images while D calls at least rt_fake_acc of the
  fakes fake (Karras et al. 2020, sec. 2-3).
* ``no_progress``: the evaluation metric's best is stale_evals evaluations and
  stale_fraction of trainer.steps old.

A rule that lacks its tags says nothing (older runs, translators). ``diagnose.py`` applies
patience and the warmup (an untrained G and a D that calls everything real are how every
run starts), and replays the rules over a run.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from statistics import median

from gantrain.health.history import RunContext
from gantrain.health.thresholds import Thresholds


@dataclass(frozen=True)
class Diagnosis:
    cause: str  # one of CAUSES
    step: int  # the log step where it holds
    explanation: str  # plain language, with the evidence numbers, one or two sentences
    overrides: tuple[str, ...]  # Hydra overrides to try, e.g. ("optim.d.lr=0.0001",) or ("augment=ada",)
    fix: str  # what on_unhealthy=rollback would change: "lower_lr" | "augment" | "none"


class Series:
    """One tag's points with what the rules ask of its prefixes, precomputed once."""

    def __init__(self, points: list[tuple[int, float]], baseline_points: int, warmup_points: int) -> None:
        self.steps = [step for step, _ in points]
        self.values = [value for _, value in points]
        finite = [v for v in self.values[:baseline_points] if math.isfinite(v)]
        self.baseline_points = baseline_points
        self.early = median(abs(v) for v in finite) if finite else math.nan  # the tag's scale
        self.early_signed = median(finite) if finite else math.nan
        # The best so far, from the end of the warmup on: an untrained G's first samples may
        # differ more than those of a G that started to learn, and that fall is no collapse.
        self.peaks, peak = [], -math.inf
        for k, value in enumerate(self.values):
            peak = max(peak, value) if math.isfinite(value) and k >= warmup_points else peak
            self.peaks.append(peak)

    def count(self, step: int) -> int:
        return bisect_right(self.steps, step)

    def baseline(self, n: int) -> float | None:
        """The early median of |value|, once the tag has a point after its baseline points."""
        return self.early if n > self.baseline_points and math.isfinite(self.early) else None


class View:
    """The history as it stood at ``step`` (values logged at or before it)."""

    def __init__(self, series: dict[str, Series], step: int) -> None:
        self.series, self.step = series, step

    def last(self, tag: str) -> float | None:
        s = self.series.get(tag)
        n = s.count(self.step) if s else 0
        return s.values[n - 1] if n else None

    def get(self, tag: str) -> tuple[Series, int] | None:
        s = self.series.get(tag)
        n = s.count(self.step) if s else 0
        return (s, n) if n else None


def _num(x: float) -> str:
    return f"{x:.3g}"


def _lr(context: RunContext, side: str, th: Thresholds) -> tuple[str, ...]:
    rate = context.lr_g if side == "g" else context.lr_d
    return (f"optim.{side}.lr={_num(rate * th.lr_scale)}",) if math.isfinite(rate) and rate > 0 else ()


def _lower_rates(cause: str, view: View, context: RunContext, th: Thresholds, explanation: str) -> Diagnosis:
    """A diagnosis whose fix is both learning rates lowered (rollback's ``lower_lr``)."""
    return Diagnosis(cause, view.step, explanation, _lr(context, "g", th) + _lr(context, "d", th), "lower_lr")


def d_won(view: View, context: RunContext, th: Thresholds) -> Diagnosis | None:
    real, fake = view.last("health/d_acc_real"), view.last("health/d_acc_fake")
    if real is not None and fake is not None:
        if not (real >= th.acc_high and fake >= th.acc_high):
            return None
        confident = f"D calls {real:.0%} of real and {fake:.0%} of fake images right"
        if real >= th.acc_perfect and fake >= th.acc_perfect:  # a won game, whatever G's gradient
            return _d_won(view, context, th, confident, "G cannot fool it")
    else:
        loss_d = view.last("loss/d")
        if context.wasserstein or loss_d is None or not loss_d <= th.d_loss_floor:
            return None
        confident = f"D's loss is down to {_num(loss_d)}"
    starved = None
    grad = view.get("health/grad_g")
    if grad and (base := grad[0].baseline(grad[1])) and grad[0].values[grad[1] - 1] < th.grad_vanish_ratio * base:
        starved = f"G's gradient norm fell to {_num(grad[0].values[grad[1] - 1])} from {_num(base)} early on"
    loss = None if context.wasserstein else view.get("loss/g")
    if starved is None and loss:
        series, n = loss
        early, now = series.early_signed, series.values[n - 1]
        if series.baseline(n) is not None and now >= early + th.loss_g_rise:
            starved = f"G's loss rose to {_num(now)} from {_num(early)} early on"
    if starved is None:
        return None
    return _d_won(view, context, th, confident, starved)


def _d_won(view: View, context: RunContext, th: Thresholds, confident: str, starved: str) -> Diagnosis:
    return Diagnosis(
        "d_won",
        view.step,
        f"D has won: {confident}, and {starved}, so G gets little to learn from. Slow D down with a lower "
        "learning rate.",
        _lr(context, "d", th),
        "lower_lr",
    )


def _fell(view: View, tag: str, low: float, drop: float) -> tuple[float, float] | None:
    """(now, best so far) when the tag is below ``low`` and below ``drop`` of its best."""
    got = view.get(tag)
    if not got:
        return None
    series, n = got
    now, best = series.values[n - 1], series.peaks[n - 1]
    return (now, best) if math.isfinite(now) and now < low and now < drop * best else None


def mode_collapse(view: View, context: RunContext, th: Thresholds) -> Diagnosis | None:
    evidence = []
    if fell := _fell(view, "health/diversity", th.diversity_low, th.diversity_drop):
        evidence.append(f"the samples' diversity fell to {_num(fell[0])} of the real images' (best {_num(fell[1])})")
    if fell := _fell(view, "health/class_entropy", th.entropy_low, th.entropy_drop):
        evidence.append(f"the class entropy of its samples fell to {_num(fell[0])} (best {_num(fell[1])})")
    if not evidence:
        return None
    text = f"Mode collapse: {' and '.join(evidence)}; G draws only a few kinds of image. Try lower learning rates."
    return _lower_rates("mode_collapse", view, context, th, text)


DIVERGENCE_TAGS = (
    ("loss/d", "loss"),
    ("loss/g", "loss"),
    ("health/grad_g", "grad"),
    ("health/grad_d", "grad"),
    ("health/weight_g", "weight"),
    ("health/weight_d", "weight"),
)


def divergence(view: View, context: RunContext, th: Thresholds) -> Diagnosis | None:
    evidence = []
    for tag, kind in DIVERGENCE_TAGS:
        got = view.get(tag)
        if not got:
            continue
        series, n = got
        now, base, since = series.values[n - 1], series.baseline(n), "early"
        if kind == "weight" and n > 1:  # growth since the first point: at step 0, the initial weights
            base, since = abs(series.values[0]), "initial"
        if not math.isfinite(now):
            evidence.append(f"{tag} is {now}")
        elif base is not None:
            factor = {"loss": th.loss_factor, "grad": th.grad_factor, "weight": th.weight_factor}[kind]
            scale = max(base, th.loss_scale_floor) if kind == "loss" else base
            if scale > 0 and abs(now) >= factor * scale:
                evidence.append(f"{tag} is {_num(now)}, {abs(now) / scale:.0f} times its {since} {_num(base)}")
    if not evidence:
        return None
    text = f"Divergence: {'; '.join(evidence[:3])}. Training ran away; try lower learning rates."
    return _lower_rates("divergence", view, context, th, text)


def d_overfits(view: View, context: RunContext, th: Thresholds) -> Diagnosis | None:
    real, heldout = view.last("health/d_acc_real"), view.last("health/d_acc_heldout")
    if real is not None and heldout is not None:
        if real - heldout < th.heldout_gap:
            return None
        evidence = f"D calls {real:.0%} of its training images real but only {heldout:.0%} of real images it never saw"
    else:
        rt = view.last("health/rt")
        rt = view.last("augment/rt") if rt is None else rt
        images = context.train_images
        if context.wasserstein or rt is None or images is None or images > th.small_data_images or rt < th.rt_high:
            return None
        fake = view.last("health/d_acc_fake")
        if fake is not None and fake < th.rt_fake_acc:  # D calls nearly everything real: not memorising
            return None
        evidence = f"r_t = {_num(rt)} on {images} training images: D is sure of nearly every one"
    if context.augment == "none":
        overrides, fix, advice = ("augment=diffaugment" if context.wasserstein else "augment=ada",), "augment", ""
    elif context.augment == "diffaugment" and not context.wasserstein:
        overrides, fix, advice = ("augment=ada",), "none", ""
    else:
        overrides, fix, advice = (), "none", " The run already augments: more training images would help."
    return Diagnosis(
        "d_overfits",
        view.step,
        f"D overfits its training set: {evidence}.{advice or ' Augment what D sees.'}",
        overrides,
        fix,
    )


class Staleness:
    """For each evaluation: the best so far (improving by min_improvement) and its step."""

    def __init__(self, series: Series, lower: bool, th: Thresholds) -> None:
        self.best, self.best_step, self.since = [], [], []
        best, best_step, since = math.nan, 0, 0
        for step, value in zip(series.steps, series.values, strict=True):
            margin = th.min_improvement * abs(best)
            better = value < best - margin if lower else value > best + margin
            if math.isfinite(value) and (math.isnan(best) or better):
                best, best_step, since = value, step, 0
            else:
                since += 1
            self.best.append(best)
            self.best_step.append(best_step)
            self.since.append(since)


def no_progress(view: View, context: RunContext, th: Thresholds, stale: Staleness | None) -> Diagnosis | None:
    got = view.get(f"eval/{context.eval_metric}")
    if stale is None or not got:
        return None
    n = got[1]
    since, best, best_step = stale.since[n - 1], stale.best[n - 1], stale.best_step[n - 1]
    if since < th.stale_evals or view.step - best_step < th.stale_fraction * context.steps:
        return None
    return Diagnosis(
        "no_progress",
        view.step,
        f"No progress: {context.eval_metric}'s best, {_num(best)} at step {best_step}, is {since} evaluations "
        f"({view.step - best_step} steps) old; checkpoints/best.pt holds it. Stop here, or retry with lower rates.",
        _lr(context, "g", th) + _lr(context, "d", th),
        "none",
    )


RULES = (d_won, mode_collapse, divergence, d_overfits)  # no_progress also takes the Staleness


def explained_away(found: dict[str, Diagnosis], view: View) -> dict[str, Diagnosis]:
    """One cause where two rules read the same evidence (a D sure of every image):
    overfitting shown on held-out images explains D's perfect accuracy (no ``d_won`` on
    top), and so do weights that ran away (``divergence``: learning rates far too high
    win the game for D in a few steps); without held-out images, a won or diverged game
    explains a high r_t (no ``d_overfits`` from r_t alone)."""
    heldout = view.last("health/d_acc_heldout") is not None
    if ("d_overfits" in found and heldout) or "divergence" in found:
        found.pop("d_won", None)
    if "d_overfits" in found and not heldout and ("d_won" in found or "divergence" in found):
        found.pop("d_overfits")
    return found
