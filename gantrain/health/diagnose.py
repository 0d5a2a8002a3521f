"""Diagnoses of a GAN run from its logged scalars: which failure holds, why (in plain
words, with the numbers), and the Hydra overrides to try; the episodes of a whole run and
its verdict.

Five causes (``CAUSES``), each a rule of ``rules.py`` over the ``health/`` tags and the
losses (the module docstring there gives each rule and its literature; every threshold is
a field of ``Thresholds``, thresholds.py). A rule's condition is judged at every log step
(the steps of ``loss/d``) with the values logged at or before it; a diagnosis holds once
the condition held at ``patience`` consecutive log steps, and no rule judges the first
``warmup_points`` log steps. ``timeline`` replays this over a whole history (the monitor
calls ``diagnose`` at each log point; ``gantrain-doctor`` reads ``timeline``): an episode
starts at the log step where a diagnosis begins to hold and ends at the first log step
where it no longer does. ``verdict`` is "unhealthy" for the causes still holding at the
end and those that held for long_episode_fraction of the run.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gantrain.health.history import History, RunContext
from gantrain.health.rules import RULES, Diagnosis, Series, Staleness, View, explained_away, no_progress
from gantrain.health.thresholds import THRESHOLDS, Thresholds

__all__ = ["CAUSES", "Diagnosis", "Episode", "diagnose", "log_steps", "timeline", "unhealthy_causes", "verdict"]

CAUSES = ("d_won", "mode_collapse", "divergence", "d_overfits", "no_progress")
LOG_TAG = "loss/d"  # logged at every log step by every model


@dataclass
class Episode:
    cause: str
    start: int  # the log step where the diagnosis began to hold
    end: int | None  # the first log step where it no longer held; None: still holding
    explanation: str  # the diagnosis' explanation at its start
    overrides: tuple[str, ...]


def log_steps(history: History) -> list[int]:
    """The steps rules are judged at: those of loss/d (every log step), else every logged step."""
    if history.get(LOG_TAG):
        return [step for step, _ in history[LOG_TAG]]
    return sorted({step for points in history.values() for step, _ in points})


def _judge(history: History, context: RunContext, th: Thresholds) -> Callable[[int], dict[str, Diagnosis]]:
    """A function of a step -> the causes whose condition holds there (without patience);
    none during the first warmup_points log steps."""
    series = {tag: Series(points, th.baseline_points, th.warmup_points) for tag, points in history.items() if points}
    steps = log_steps(history)
    metric = series.get(f"eval/{context.eval_metric}") if context.eval_metric else None
    stale = Staleness(metric, context.eval_lower_is_better, th) if metric else None

    def judge(step: int) -> dict[str, Diagnosis]:
        if bisect_right(steps, step) <= th.warmup_points:
            return {}
        view = View(series, step)
        found = [rule(view, context, th) for rule in RULES] + [no_progress(view, context, th, stale)]
        return explained_away({d.cause: d for d in found if d is not None}, view)

    return judge


def diagnose(history: History, context: RunContext, thresholds: Thresholds = THRESHOLDS) -> list[Diagnosis]:
    """The diagnoses that hold at the last log step of history (uses only values at or before it)."""
    steps = log_steps(history)[-thresholds.patience :]
    if len(steps) < thresholds.patience:
        return []
    judge = _judge(history, context, thresholds)
    held = [judge(step) for step in steps]
    return [held[-1][cause] for cause in CAUSES if all(cause in found for found in held)]


def timeline(history: History, context: RunContext, thresholds: Thresholds = THRESHOLDS) -> list[Episode]:
    """Replays diagnose() at each log step (the steps of loss/d) -> episodes (start, end or None if still holding)."""
    judge = _judge(history, context, thresholds)
    run = dict.fromkeys(CAUSES, 0)  # consecutive log steps each condition has held
    open_: dict[str, Episode] = {}
    episodes: list[Episode] = []
    for step in log_steps(history):
        found = judge(step)
        for cause in CAUSES:
            run[cause] = run[cause] + 1 if cause in found else 0
            if run[cause] >= thresholds.patience and cause not in open_:
                d = found[cause]
                open_[cause] = Episode(cause, step, None, d.explanation, d.overrides)
                episodes.append(open_[cause])
            elif run[cause] == 0 and cause in open_:
                open_.pop(cause).end = step
    return episodes


def unhealthy_causes(
    episodes: Iterable[Episode], last_step: int | None = None, thresholds: Thresholds = THRESHOLDS
) -> list[str]:
    """Causes still holding at the end, or that held for at least long_episode_fraction of
    the run's logged steps (``last_step``; default: the latest step the episodes name)."""
    episodes = list(episodes)
    if last_step is None:
        last_step = max((e.end if e.end is not None else e.start for e in episodes), default=0)
    long = thresholds.long_episode_fraction * max(last_step, 1)
    bad = {e.cause for e in episodes if e.end is None or e.end - e.start >= long}
    return [cause for cause in CAUSES if cause in bad]


def verdict(episodes: Iterable[Episode], last_step: int | None = None, thresholds: Thresholds = THRESHOLDS) -> str:
    """ "healthy", or "unhealthy: <causes>": those still holding at the end, and those that
    held for long (a brief episode the run recovered from is not a verdict)."""
    causes = unhealthy_causes(episodes, last_step, thresholds)
    return f"unhealthy: {', '.join(causes)}" if causes else "healthy"
