"""Catching non-finite losses and weights, cheaply.

A GAN that diverges usually shows it as an Inf or NaN loss, sometimes first as a
non-finite weight (a clipped critic, an exploding BatchNorm statistic). Checking every
step would cost a host sync per step, so the loop checks at the logging interval (the
logged values are read back there anyway) and before every checkpoint (so a
checkpoint never holds a non-finite weight): the norms of all parameters and buffers
of each net are reduced on the device and read back in one sync.

What happens then is ``trainer.on_nonfinite``'s choice (``Guard``): ``stop``, naming the
step, the last good checkpoint and the usual fixes in one line; or ``rollback``: restart
from the last good checkpoint, as PaLM did at its loss spikes (Chowdhery et al., 2022,
section 5.1, which skipped the batches around the spike), here with the learning rates
scaled down instead, since the same steps at the same rates would diverge the same way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from gantrain.engine.distributed import SingleProcess
from gantrain.engine.logger import RunLogger
from gantrain.errors import UserError

log = logging.getLogger("gantrain")

NonFinite = Literal["stop", "rollback"]


def nonfinite_values(values: dict[str, float]) -> list[str]:
    return [tag for tag, value in values.items() if not math.isfinite(value)]


def nonfinite_nets(nets: dict[str, nn.Module]) -> list[str]:
    """The names of the nets with any non-finite parameter or buffer."""
    names, flags = [], []
    for name, net in nets.items():
        tensors = [t.detach() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
        if not tensors:
            continue
        norms = torch._foreach_norm(tensors)  # NaN/Inf anywhere in a tensor shows in its norm
        flags.append(torch.stack(norms).isfinite().all())
        names.append(name)
    if not flags:
        return []
    finite = torch.stack(flags).tolist()  # the one host sync
    return [f"{name} weights" for name, ok in zip(names, finite) if not ok]


# What to try, named without config keys; the config layer passes its own text, with
# the keys to change (build.nonfinite_fixes).
DEFAULT_FIXES = "lower the learning rates, or use a loss with a gradient penalty or R1"


def explain(problems: list[str], step: int, checkpoint_step: int | None, fixes: str = DEFAULT_FIXES) -> str:
    """One line: what went non-finite, where the last good state is, what to try."""
    kept = (
        f"the last good checkpoint (step {checkpoint_step}) is kept"
        if checkpoint_step is not None
        else "no checkpoint was written yet"
    )
    return f"{', '.join(problems)} became non-finite by step {step}; {kept}. Try: {fixes}"


class RollBack(Exception):
    """Raised by ``Guard.check``: a value went non-finite and the run goes back to its checkpoint."""

    # A health diagnosis' rollback carries the monitor's decision (health/monitor.py's
    # UnhealthyRollBack); a non-finite value's has none.
    decision = None

    def __init__(self, problems: list[str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Guard:
    """``trainer.on_nonfinite`` with its limits: ``max_rollbacks`` and ``lr_scale``."""

    mode: NonFinite
    max_rollbacks: int
    lr_scale: float
    parallel: SingleProcess
    logger: RunLogger
    fixes: str = DEFAULT_FIXES  # what the error tells the user to try

    def check(
        self,
        values: dict[str, float],
        nets: dict[str, nn.Module],
        step: int,
        checkpoint_step: int | None,
        rollbacks: int,
    ) -> None:
        """Raises ``RollBack``, or a UserError that explains, when a logged value or a weight is NaN/Inf."""
        problems = nonfinite_values(values) + nonfinite_nets(nets)
        # Every process decides alike (they would otherwise wait on each other forever).
        if not self.parallel.any(bool(problems)):
            return
        problems = problems or ["a value on another process"]
        # checkpoint_step, not the file: every process knows it, also where only rank 0's
        # machine holds the run directory.
        if self.mode == "rollback" and rollbacks < self.max_rollbacks and checkpoint_step is not None:
            raise RollBack(problems)
        raise UserError(explain(problems, step, checkpoint_step, self.fixes))

    def lower_rates(
        self, optimizers: tuple[torch.optim.Optimizer, ...], schedulers: list, factor: float, times: int
    ) -> float:
        """After a rollback: the learning rates times ``lr_scale ** times``; returns that scale.
        ``factor`` is the schedule's at the step rolled back to."""
        scale = self.lr_scale**times
        for optimizer, scheduler in zip(optimizers, schedulers):
            # LambdaLR sets lr = base_lr * factor at every step: scale the base too.
            scheduler.base_lrs = [base * scale for base in scheduler.base_lrs]
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * factor
        return scale

    def report(self, problems: list[str], failed_at: int, step: int, scale: float, count: int) -> None:
        """A rollback, in the run's logs and on the console."""
        self.logger.scalars({"nonfinite/rollbacks": count}, step)
        self.logger.text(
            "nonfinite",
            f"{', '.join(problems)} non-finite at step {failed_at}: rolled back "
            f"to step {step}, learning rates x{scale:g} (rollback {count})",
            step,
        )
        log.warning(
            "%s non-finite at step %d: rolled back to step %d, learning rates x%g (rollback %d of %d)",
            ", ".join(problems),
            failed_at,
            step,
            scale,
            count,
            self.max_rollbacks,
        )
