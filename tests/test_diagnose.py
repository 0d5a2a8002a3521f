"""The health rules (gantrain/health/diagnose.py) on constructed histories: each cause
fires on its failure, with its numbers and overrides; typical noisy DCGAN numbers fire
nothing; one odd log point is no diagnosis; missing tags say nothing."""

from __future__ import annotations

import dataclasses
import math
import random
import re

import pytest

from gantrain.health.diagnose import CAUSES, Episode, diagnose, log_steps, timeline, verdict
from gantrain.health.history import RunContext
from gantrain.health.thresholds import THRESHOLDS

EVERY = 50  # log_every
POINTS = 120

CONTEXT = RunContext(
    noise_model=True,
    labelled=True,
    wasserstein=False,
    train_images=None,
    augment="none",
    lr_g=2e-4,
    lr_d=2e-4,
    eval_metric="classifier_fid",
    eval_lower_is_better=True,
    steps=EVERY * POINTS,
)


def noisy(rng: random.Random, center: float, spread: float) -> float:
    return center + rng.uniform(-spread, spread)


def healthy(seed: int = 0, points: int = POINTS, eval_every: int = 10) -> dict[str, list[tuple[int, float]]]:
    """Typical DCGAN-on-MNIST numbers, noisy but stable: D 60-90% right, G's loss 0.7-3,
    gradients jumping by 2x, weights growing slowly, diversity rising from an untrained
    G's 0.2 to ~0.9, the judge's FID falling with noise and flattening late."""
    rng = random.Random(seed)
    history: dict[str, list[tuple[int, float]]] = {}

    def log(tag: str, step: int, value: float) -> None:
        history.setdefault(tag, []).append((step, value))

    for i in range(points):
        step = EVERY * (i + 1)
        ramp = min(1.0, i / 20)
        log("loss/d", step, noisy(rng, 1.1, 0.35))
        log("loss/g", step, noisy(rng, 1.6, 0.9) + (1.5 if rng.random() < 0.05 else 0.0))
        log("health/d_acc_real", step, noisy(rng, 0.75, 0.15))
        log("health/d_acc_fake", step, noisy(rng, 0.7, 0.2))
        log("health/rt", step, noisy(rng, 0.4, 0.2))
        log("health/grad_g", step, 2.0 * math.exp(rng.uniform(-0.7, 0.7)))
        log("health/grad_d", step, 5.0 * math.exp(rng.uniform(-0.7, 0.7)))
        log("health/weight_g", step, 30.0 * (1 + i / points))
        log("health/weight_d", step, 20.0 * (1 + 2 * i / points))
        log("health/diversity", step, 0.2 + 0.7 * ramp + rng.uniform(-0.05, 0.05))
        log("health/class_entropy", step, 0.7 + 0.25 * ramp + rng.uniform(-0.03, 0.03))
        if (i + 1) % eval_every == 0:
            log("eval/classifier_fid", step, 60.0 / (1 + i / 10) + rng.uniform(-0.5, 0.5))
    return history


def with_values(history: dict, tag: str, start: int, values) -> dict:
    """``history`` with ``tag``'s points from index ``start`` on replaced (values: one per point or a function)."""
    out = {k: list(v) for k, v in history.items()}
    points = out[tag]
    for k in range(start, len(points)):
        value = values(k - start, points[k][1]) if callable(values) else values
        points[k] = (points[k][0], value)
    return out


def causes(history: dict, context: RunContext = CONTEXT) -> list[str]:
    return [d.cause for d in diagnose(history, context)]


@pytest.mark.parametrize("seed", range(5))
def test_healthy_noisy_runs_are_flagged_by_nothing(seed):
    history = healthy(seed)
    assert timeline(history, CONTEXT) == []
    assert verdict(timeline(history, CONTEXT)) == "healthy"
    # Also as a small-data run (r_t ~0.4 is far from overfitting) and as a Wasserstein one.
    small = dataclasses.replace(CONTEXT, train_images=1000, wasserstein=True)
    assert timeline(history, small) == []


def test_d_won_needs_confident_d_and_a_starved_g():
    history = healthy()
    for tag in ("health/d_acc_real", "health/d_acc_fake"):
        history = with_values(history, tag, 60, 0.97)
    assert causes(history) == []  # D is sure but G still learns: not (yet) a diagnosis
    history = with_values(history, "health/grad_g", 60, lambda k, v: v * 0.5**k)  # G's gradient collapses
    found = diagnose(history, CONTEXT)
    assert [d.cause for d in found] == ["d_won"]
    d = found[0]
    assert "97% of real and 97% of fake" in d.explanation and "gradient norm fell" in d.explanation
    assert d.overrides == ("optim.d.lr=0.0001",) and d.fix == "lower_lr" and d.step == EVERY * POINTS


def test_a_d_that_separates_every_image_has_won_whatever_g_s_gradient():
    """The non-saturating G loss keeps G's gradient alive when D wins (its purpose), so a
    D that is right about essentially every image is a diagnosis by itself."""
    history = healthy()
    for tag in ("health/d_acc_real", "health/d_acc_fake"):
        history = with_values(history, tag, 60, 0.995)
    found = diagnose(history, CONTEXT)
    assert [d.cause for d in found] == ["d_won"] and "G cannot fool it" in found[0].explanation


def test_one_cause_where_two_rules_read_the_same_evidence():
    """Held-out images show memorising: that, not d_won, explains a perfect D; without them
    a won game explains a high r_t, which is then no overfitting diagnosis."""
    small = dataclasses.replace(CONTEXT, train_images=500)
    history = healthy()
    for tag in ("health/d_acc_real", "health/d_acc_fake", "health/rt"):
        history = with_values(history, tag, 60, 1.0)
    assert causes(history, small) == ["d_won"]
    runaway = with_values(history, "health/weight_d", 60, lambda k, v: v * 10)  # rates far too high
    assert causes(runaway, small) == ["divergence"]  # which won D the game
    history["health/d_acc_heldout"] = [(step, 0.1) for step, _ in history["health/d_acc_real"]]
    assert causes(history, small) == ["d_overfits"]


def test_d_won_from_losses_alone_on_an_older_run():
    history = {tag: points for tag, points in healthy().items() if not tag.startswith("health/")}
    history = with_values(history, "loss/d", 60, 0.01)
    history = with_values(history, "loss/g", 60, 7.5)
    found = diagnose(history, CONTEXT)
    assert [d.cause for d in found] == ["d_won"] and "G's loss rose to 7.5" in found[0].explanation
    # A Wasserstein critic's loss has no floor: the rule says nothing there.
    assert causes(history, dataclasses.replace(CONTEXT, wasserstein=True)) == []


def test_mode_collapse_when_diversity_falls():
    history = with_values(healthy(), "health/diversity", 80, lambda k, v: max(0.05, v - 0.1 * k))
    found = diagnose(history, CONTEXT)
    assert [d.cause for d in found] == ["mode_collapse"]
    assert "diversity fell to 0.05" in found[0].explanation
    assert found[0].overrides == ("optim.g.lr=0.0001", "optim.d.lr=0.0001")
    episodes = timeline(history, CONTEXT)
    assert [e.cause for e in episodes] == ["mode_collapse"] and episodes[0].end is None
    assert verdict(episodes) == "unhealthy: mode_collapse"


def test_mode_collapse_when_class_coverage_falls():
    history = with_values(healthy(), "health/class_entropy", 90, 0.1)  # nearly one class
    found = diagnose(history, CONTEXT)
    assert [d.cause for d in found] == ["mode_collapse"] and "class entropy" in found[0].explanation


def test_divergence_when_losses_and_weights_explode():
    history = with_values(healthy(), "loss/d", 100, lambda k, v: v * 1000)
    history = with_values(history, "health/weight_d", 100, lambda k, v: v * 1000)
    found = diagnose(history, CONTEXT)
    assert "divergence" in [d.cause for d in found]
    text = next(d for d in found if d.cause == "divergence").explanation
    assert "loss/d" in text and "health/weight_d" in text
    # A loss is measured against its early median, a weight norm against its initial one.
    assert re.search(r"loss/d is \S+, \d+ times its early ", text), text
    assert re.search(r"health/weight_d is \S+, \d+ times its initial 20\b", text), text
    nan = with_values(healthy(), "loss/g", 110, math.nan)
    assert "divergence" in causes(nan)


def test_d_overfits_when_heldout_accuracy_falls_behind():
    history = with_values(healthy(), "health/d_acc_real", 80, 0.92)
    history["health/d_acc_heldout"] = [(step, 0.45) for step, _ in history["health/d_acc_real"]]
    found = diagnose(history, CONTEXT)
    assert [d.cause for d in found] == ["d_overfits"]
    assert "92%" in found[0].explanation and "45%" in found[0].explanation
    assert found[0].overrides == ("augment=ada",) and found[0].fix == "augment"
    # gantrain refuses ADA with a Wasserstein critic: DiffAugment there.
    wasserstein = diagnose(history, dataclasses.replace(CONTEXT, wasserstein=True))
    assert wasserstein[0].overrides == ("augment=diffaugment",)
    # Already augmented with ADA: no augmentation left to suggest, and rollback cannot fix it.
    ada = diagnose(history, dataclasses.replace(CONTEXT, augment="ada"))
    assert ada[0].overrides == () and ada[0].fix == "none"


def test_d_overfits_by_rt_only_on_a_small_training_set():
    # A healthy DCGAN on the 5,000 bundled digits runs at r_t 0.85-0.93: no diagnosis there.
    assert causes(with_values(healthy(), "health/rt", 80, 0.93), dataclasses.replace(CONTEXT, train_images=2000)) == []
    history = with_values(healthy(), "health/rt", 80, 0.99)
    assert causes(history, dataclasses.replace(CONTEXT, train_images=2000)) == ["d_overfits"]
    assert causes(history, dataclasses.replace(CONTEXT, train_images=None)) == []  # size unknown
    assert causes(history, dataclasses.replace(CONTEXT, train_images=200_000)) == []  # big data
    # Older ADA runs log augment/rt, not health/rt.
    older = {("augment/rt" if tag == "health/rt" else tag): points for tag, points in history.items()}
    assert causes(older, dataclasses.replace(CONTEXT, train_images=2000)) == ["d_overfits"]


def test_no_progress_when_the_metric_is_flat_for_many_evaluations():
    history = healthy(points=200, eval_every=5)
    context = dataclasses.replace(CONTEXT, steps=EVERY * 200)
    history = with_values(history, "eval/classifier_fid", 7, 12.0)  # flat from the 8th evaluation (step 2000) on
    found = diagnose(history, context)
    assert [d.cause for d in found] == ["no_progress"]
    assert (
        "classifier_fid's best, 12 at step 2000, is 32 evaluations" in found[0].explanation and found[0].fix == "none"
    )
    # A metric that keeps improving, or one that is not the run's, says nothing.
    assert causes(healthy(points=200, eval_every=5), context) == []
    assert causes(history, dataclasses.replace(context, eval_metric="fid")) == []
    assert causes(history, dataclasses.replace(context, eval_metric=None)) == []
    # Higher is better: a flat value is no new best either.
    rising = with_values(history, "eval/classifier_fid", 0, lambda k, v: 10.0 + min(k, 10))
    assert causes(rising, dataclasses.replace(context, eval_lower_is_better=False)) == ["no_progress"]


def test_a_one_point_spike_is_no_diagnosis():
    base = healthy()
    spike = with_values(base, "loss/d", 70, lambda k, v: v * 1000 if k == 0 else v)
    assert timeline(spike, CONTEXT) == []
    at_spike = {tag: [p for p in points if p[0] <= 71 * EVERY] for tag, points in spike.items()}
    assert diagnose(at_spike, CONTEXT) == []  # the monitor at the spike's own log step
    # Held for patience points: an episode from the third, ending when it stops.
    held = with_values(base, "loss/d", 70, lambda k, v: v * 1000 if k < 5 else v)
    episodes = timeline(held, CONTEXT)
    assert [(e.cause, e.start, e.end) for e in episodes] == [("divergence", 73 * EVERY, 76 * EVERY)]
    assert verdict(episodes, last_step=POINTS * EVERY) == "healthy"  # brief and recovered
    assert verdict(episodes, last_step=20 * EVERY) == "unhealthy: divergence"  # a long part of the run


def test_diagnose_agrees_with_the_timeline_at_every_step():
    history = with_values(healthy(), "health/diversity", 50, lambda k, v: 0.9 if k % 20 < 10 else 0.05)
    episodes = timeline(history, CONTEXT)
    assert len(episodes) >= 2
    for step in log_steps(history)[::3]:
        prefix = {tag: [p for p in points if p[0] <= step] for tag, points in history.items()}
        holding = {e.cause for e in episodes if e.start <= step and (e.end is None or step < e.end)}
        assert {d.cause for d in diagnose(prefix, CONTEXT)} == holding


def test_missing_tags_say_nothing():
    assert diagnose({}, CONTEXT) == [] and timeline({}, CONTEXT) == [] and verdict([]) == "healthy"
    losses_only = {tag: healthy()[tag] for tag in ("loss/d", "loss/g")}
    assert timeline(losses_only, CONTEXT) == []
    translator = dataclasses.replace(CONTEXT, noise_model=False, eval_metric=None, lr_g=math.nan)
    assert timeline(losses_only, translator) == []


def test_verdict_names_causes_in_order():
    episodes = [Episode("no_progress", 100, None, "", ()), Episode("d_won", 50, None, "", ())]
    assert verdict(episodes) == "unhealthy: d_won, no_progress"
    assert set(CAUSES) == {"d_won", "mode_collapse", "divergence", "d_overfits", "no_progress"}
    assert THRESHOLDS.patience >= 2


def test_the_start_of_a_run_is_not_judged():
    """An untrained G (samples that first differ, then all look alike) and a D that calls
    everything real (r_t ~1) are how runs start: no diagnosis in the warmup."""
    start = THRESHOLDS.warmup_points
    history = with_values(healthy(), "health/diversity", 0, lambda k, v: 0.5 / (1 + 10 * k) if k < start else v)
    history = with_values(history, "health/rt", 0, lambda k, v: 0.95 if k < start else v)
    history = with_values(history, "health/d_acc_fake", 0, lambda k, v: 0.1 if k < start else v)
    assert timeline(history, dataclasses.replace(CONTEXT, train_images=2000)) == []
    # Past the warmup too, a D that calls the fakes real is not overfitting, however high r_t.
    later = with_values(history, "health/rt", 60, 0.95)
    later = with_values(later, "health/d_acc_fake", 60, 0.2)
    assert causes(later, dataclasses.replace(CONTEXT, train_images=2000)) == []
    # The monitor of a short run (fewer log points than the warmup) says nothing.
    short = {tag: points[: start - 1] for tag, points in with_values(history, "loss/d", 0, 1e6).items()}
    assert diagnose(short, CONTEXT) == []
