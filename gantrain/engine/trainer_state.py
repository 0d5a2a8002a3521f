"""What a checkpoint holds of a Trainer, and how a resumed run gets it back.

The state is everything an uninterrupted run would still have in memory: weights,
optimizer moments, the data stream's position, the learning-rate schedules, the EMA,
the best evaluation so far, the rollback count, what the health monitor recorded (its
history, and the actions of ``trainer.on_unhealthy``, which a resume re-applies: a
switched-on DiffAugment), and the random number generators, so
that a resumed run draws the same noise and batches as one that never stopped. Under
data parallelism each process's generators are saved (``rng_ranks``) and each process
gets its own back.
"""

from __future__ import annotations

from typing import Any

import torch

from gantrain.engine.checkpoint import exported_generator, last_checkpoint, save_checkpoint
from gantrain.engine.checkpoint_clock import CheckpointClock
from gantrain.engine.distributed import SingleProcess
from gantrain.engine.ema import EMA
from gantrain.engine.runtime import capture_rng, restore_rng
from gantrain.engine.trainer_config import TrainerConfig
from gantrain.errors import UserError


class TrainerState:
    """The checkpointed part of ``loop.Trainer``, which sets these attributes."""

    model: Any  # a GAN model (models/): G, D, their losses and the sample grid
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    stream: Any  # the batch stream (data/), with its own state_dict
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    ema: EMA | None
    cfg: TrainerConfig
    parallel: SingleProcess
    meta: dict  # the run's config, data spec and environment, saved with every checkpoint
    fixed: dict[str, torch.Tensor]
    step: int
    images_seen: int
    best: dict | None
    rollbacks: int
    checkpoint_step: int | None
    checkpoint_clock: CheckpointClock  # trainer.checkpoint_minutes: restarted by every checkpoint written or loaded
    health: Any  # the health monitor (health/monitor.py), or None

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "images_seen": self.images_seen,
            "model": self.model.state_dict(),
            "optim": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "stream": self.stream.state_dict(),
            "rng": capture_rng(),
            "fixed": self.fixed,
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            **({"ema": self.ema.state_dict()} if self.ema else {}),
            **({"best": self.best} if self.best else {}),
            "rollbacks": self.rollbacks,
            **({"health": self.health.state_dict()} if self.health else {}),
            **self.meta,
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.opt_g.load_state_dict(state["optim"]["g"])
            self.opt_d.load_state_dict(state["optim"]["d"])
            if self.ema and "ema" in state:
                self.ema.load_state_dict(state["ema"])
            elif self.ema:  # EMA switched on for a run that had none: start from G
                self.ema = EMA(self.model.G, self.cfg.ema_decay, self.model.calibration_inputs)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(
                f"the checkpoint does not fit the configured model ({first}): resume "
                f"with the run's own model/data settings"
            ) from None
        self.stream.load_state_dict(state["stream"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.fixed = state["fixed"]
        self.best = state.get("best")
        self.rollbacks = int(state.get("rollbacks", 0))
        self.checkpoint_step = self.step
        self.checkpoint_clock.reset()
        for scheduler, scheduler_state in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(scheduler_state)
        if self.health:  # after the schedulers: it reads their rates; older checkpoints have no "health"
            self.health.load_state_dict(state.get("health"), self)
        self._restore_rng(state)

    def _restore_rng(self, state: dict) -> None:
        """This process's RNG state from the checkpoint. A run resumed on a different
        number of processes gives ranks without a saved state rank 0's, re-seeded by rank
        (their noise differs from an uninterrupted run's, and can no longer match it)."""
        rank, saved = self.parallel.rank, state.get("rng_ranks")
        if saved and rank < len(saved) and self.parallel.world == len(saved):
            restore_rng(saved[rank])
            return
        restore_rng(state["rng"])
        if rank:
            torch.manual_seed(int(torch.randint(2**62, (1,))) + rank)

    @property
    def sampling_generator(self):
        """The G that samples and exports come from: the EMA copy when there is one."""
        return self.ema.module if self.ema else self.model.G

    def write_checkpoints(self, run_dir) -> None:
        """``last.pt`` (the whole state) and ``generator.pt`` (the G to sample from, the
        EMA copy when there is one, with the run's record). Every process calls it: it
        gathers every process's RNG state, so that a resumed data-parallel run draws
        what an uninterrupted one would have; rank 0 writes."""
        rng_ranks = self.parallel.gather(capture_rng())
        failure = None
        if self.parallel.is_main:
            try:
                save_checkpoint({**self.state_dict(), "rng_ranks": rng_ranks}, last_checkpoint(run_dir))
                export = {"generator": self.sampling_generator.state_dict(), "ema": self.ema is not None}
                save_checkpoint({**export, "step": self.step, **self.meta}, exported_generator(run_dir))
                if self.health:  # checkpoints/healthy.pt (on_unhealthy=rollback)
                    self.health.keep_healthy(run_dir)
            except UserError as exc:
                failure = exc
        if self.parallel.any(failure is not None):
            raise failure or UserError("rank 0 could not write the checkpoint (its message says why)")
        self.checkpoint_step = self.step
        self.checkpoint_clock.reset()
