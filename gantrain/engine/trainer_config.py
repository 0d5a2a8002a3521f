"""What a Trainer is given besides its model, data and optimizers: its settings (config
group ``trainer``, checked here, where the bounds are known) and the evaluator it calls
(``metrics/evaluate.py`` provides one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from gantrain.checks import at_least, within
from gantrain.engine.guard import NonFinite

# What a health diagnosis (gantrain/health/) does to the run: see health/monitor.py.
OnUnhealthy = Literal["warn", "stop", "rollback"]


class Evaluator(Protocol):
    """Sample-quality metrics of a generator: ``evaluator(G)`` returns a report with
    ``metrics`` and ``floor`` dicts; ``every`` (steps) and ``best`` (the metric that
    picks checkpoints/best.pt) say when and what."""

    every: int
    best: str

    def __call__(self, generator) -> dict: ...

    def is_better(self, value: float, best: float | None) -> bool: ...


@dataclass(frozen=True)
class TrainerConfig:
    steps: int = 3000  # generator updates
    d_steps: int = 1  # discriminator updates per generator update
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    checkpoint_minutes: float | None = 5.0  # also a checkpoint after this much wall time (0 or None: off)
    num_samples: int = 64  # images in the fixed-noise grid
    progress: bool = True  # the tqdm bar
    ema_decay: float = 0.0  # > 0: keep an EMA of G's weights and sample from it
    lr_decay_start: int | None = None  # from this step, learning rates fall linearly to 0
    on_nonfinite: NonFinite = "stop"  # or "rollback" to the last checkpoint with lower learning rates
    max_rollbacks: int = 3
    rollback_lr_scale: float = 0.5
    on_unhealthy: OnUnhealthy = "warn"  # a health diagnosis: warn, stop, or rollback to the last healthy checkpoint

    def __post_init__(self) -> None:
        for name in ("steps", "d_steps", "log_every", "sample_every", "checkpoint_every", "num_samples"):
            at_least(name, getattr(self, name), 1)
        if self.checkpoint_minutes is not None:  # NaN and infinity are refused too
            within(
                "checkpoint_minutes",
                self.checkpoint_minutes,
                0,
                math.inf,
                "the wall time between checkpoints, e.g. 5; 0 turns time-based checkpoints off",
            )
        if self.lr_decay_start is not None:
            at_least("lr_decay_start", self.lr_decay_start, 0)
        within("ema_decay", self.ema_decay, 0, 1, "0 turns the EMA off, 0.999 is usual")
        at_least("max_rollbacks", self.max_rollbacks, 0)
        within(
            "rollback_lr_scale",
            self.rollback_lr_scale,
            0,
            1,
            "0.5 halves the learning rates at each rollback",
            closed=(False, True),
        )
