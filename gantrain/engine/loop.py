"""The training loop: read it top to bottom.

One step = ``d_steps`` discriminator updates (each on a fresh real batch, each
followed by the loss's constraint on D, e.g. WGAN's clipping) then one generator
update, then the EMA of G's weights when ``ema_decay`` > 0. The step counter counts
generator updates; ``images_seen`` counts real images consumed. Logged values stay on
the device and are summed there; they are read back (one host sync) only every
``log_every`` steps. A checkpoint is written every ``checkpoint_every`` steps and also
once ``checkpoint_minutes`` of wall time have passed since the last (``checkpoint_clock.py``).

Ctrl-C or SIGTERM asks the loop to stop: it finishes the current step, writes a
checkpoint and returns ``"interrupted"``. A second Ctrl-C stops at once.

Two detours leave the loop by an exception and come back to it from ``fit``: a NaN/Inf
caught by the guard rolls back to the last checkpoint (``guard.py``), as does a health
diagnosis with ``trainer.on_unhealthy=rollback`` to the last healthy one; and a
``torch.compile`` failure in the first step falls back to eager nets
(``compile_fallback.py``). At each log point the health monitor (``health/monitor.py``)
gets the logged values, G's and D's gradient norms among them, and may stop the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
from tqdm.auto import tqdm

from gantrain.engine.checkpoint import last_checkpoint, load_checkpoint
from gantrain.engine.checkpoint_clock import CheckpointClock
from gantrain.engine.compile_fallback import Compilation, CompileFailed
from gantrain.engine.distributed import SingleProcess
from gantrain.engine.ema import EMA
from gantrain.engine.guard import DEFAULT_FIXES, Guard, RollBack
from gantrain.engine.logger import RunLogger
from gantrain.engine.outputs import TrainerOutputs
from gantrain.engine.runtime import restore_rng
from gantrain.engine.schedule import linear_decay
from gantrain.engine.speed import Speed, compile_nets
from gantrain.engine.stop import StopRequest
from gantrain.engine.trainer_config import Evaluator, TrainerConfig  # TrainerConfig: imported from here too
from gantrain.health.signals import grad_norm

STOP_CHECK_EVERY = 8  # steps between the processes' agreements on a stop request (torchrun)


class Trainer(TrainerOutputs):
    """One run: ``fit`` calls ``_train``, which calls ``_update`` once a step."""

    def __init__(
        self,
        model,
        opt_g,
        opt_d,
        stream,
        logger: RunLogger,
        cfg: TrainerConfig,
        device: torch.device,
        meta: dict,
        fixed: dict[str, torch.Tensor],
        validation: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None,
        evaluator: Evaluator | None = None,
        speed: Speed | None = None,
        parallel: SingleProcess | None = None,
        eval_every: int | None = None,
        nonfinite_fixes: str = DEFAULT_FIXES,
        health=None,
    ) -> None:
        """``fixed``: what every sample grid is drawn from (the model's fixed noise, or
        a fixed validation batch); ``validation``: batches for ``model.validate``;
        ``evaluator``: sample-quality metrics every ``eval_every`` steps (default
        ``evaluator.every``; under data parallelism only rank 0 has an evaluator, and
        every process needs the schedule); ``speed``: the fast path's switches;
        ``parallel``: the data-parallel context (``engine/distributed.py``);
        ``nonfinite_fixes``: what the error of a NaN/Inf tells the user to try; ``health``: the
        health monitor (``health/monitor.py``: ``HealthMonitor``), or None."""
        self.model, self.opt_g, self.opt_d = model, opt_g, opt_d
        self.stream, self.logger, self.cfg = stream, logger, cfg
        self.device, self.meta = device, meta
        self.step = 0
        self.images_seen = 0
        self.ema = EMA(model.G, cfg.ema_decay, model.calibration_inputs) if cfg.ema_decay else None
        self.fixed, self.validation, self.evaluator = fixed, validation, evaluator
        self.health = health
        self.eval_every = eval_every if eval_every is not None else (evaluator.every if evaluator else 0)
        self.speed = speed or Speed(device=device)
        self.parallel = parallel or SingleProcess()
        self.compilation = Compilation(self.parallel)  # what compile() compiled, and its fallback
        self.guard = Guard(
            cfg.on_nonfinite, cfg.max_rollbacks, cfg.rollback_lr_scale, self.parallel, logger, nonfinite_fixes
        )
        self.best: dict | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self.rollbacks = 0  # times a non-finite value sent the run back to its checkpoint
        self.checkpoint_step: int | None = None  # the step of the last checkpoint written or loaded
        self.checkpoint_clock = CheckpointClock(cfg.checkpoint_minutes, self.parallel)
        # Not a bound method: the schedulers would hold the Trainer in a reference cycle,
        # which keeps it (and what it holds, the process groups among them) alive until
        # the garbage collector happens to run.
        self._lr_factor = linear_decay(cfg.lr_decay_start, cfg.steps)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor) for opt in (opt_g, opt_d)]

    # -- the loop ------------------------------------------------------------
    def fit(self) -> str:
        cfg = self.cfg
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not cfg.progress or not self.parallel.is_main,
            unit="step",
            dynamic_ncols=True,
            desc="train",
        )
        if self.health:
            self.health.at_start(self)  # the weights' norms at step 0
        with StopRequest() as stop:
            while True:
                try:
                    self._train(stop, bar)
                    interrupted = self.step < cfg.steps  # _train returns early only when asked to stop
                    if self.step % cfg.sample_every != 0 and self.parallel.is_main:
                        self.log_samples()
                    # A last evaluation, so that every run ends with a score (sweeps compare them);
                    # then a checkpoint, which records the best score it may have set.
                    final_eval = bool(self.eval_every and self.step % self.eval_every)
                    if final_eval and self.evaluator:
                        self.evaluate()
                    if self.checkpoint_step != self.step or final_eval:
                        self.save()
                    break
                except RollBack as rollback:
                    self._roll_back(rollback)
                    bar.reset(total=cfg.steps)
                    bar.update(self.step)
                except CompileFailed as failure:
                    self._train_eagerly(failure)
            bar.close()
        self.logger.flush()
        if self.health and self.health.stopped:
            return "unhealthy"  # on_unhealthy=stop
        return "interrupted" if interrupted else "finished"

    def _train(self, stop: StopRequest, bar) -> None:
        """Steps until the last one or a stop request."""
        cfg = self.cfg
        batches = iter(self.stream)
        sums: dict[str, torch.Tensor] = {}
        logged_steps, last_log_time, last_log_images = 0, time.perf_counter(), self.images_seen
        # A stop request is acted on by every process at the same step. With one process
        # parallel.any is the flag itself; with several it is a network round trip, paid
        # every STOP_CHECK_EVERY steps only (small GANs on GPUs are bound by the host's time).
        while self.step < cfg.steps and not (
            (self.parallel.world == 1 or self.step % STOP_CHECK_EVERY == 0) and self.parallel.any(stop.requested)
        ):
            if self.compilation.unproven:  # compilation runs in this step, and may fail
                batch, step_logs = self.compilation.first_step(lambda: self._update(batches), self.state_dict)
            else:
                batch, step_logs = self._update(batches)
            self.step += 1
            self.images_seen += cfg.d_steps * len(next(iter(batch.values()))) * self.parallel.world
            for tag, value in step_logs.items():
                sums[tag] = sums[tag] + value if tag in sums else value.clone()
            logged_steps += 1
            bar.update(1)

            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.perf_counter()
                values = self.parallel.mean({tag: float(total) / logged_steps for tag, total in sums.items()})
                self._check_finite(values)
                values["perf/images_per_sec"] = (self.images_seen - last_log_images) / max(now - last_log_time, 1e-9)
                values["lr/g"] = self.opt_g.param_groups[0]["lr"]
                values["lr/d"] = self.opt_d.param_groups[0]["lr"]
                if self.health:  # weight norms, the sample probe's signals (rank 0)
                    values.update(self.health.measure(self))
                self.logger.scalars(values, self.step)
                bar.set_postfix(
                    {
                        "d": f"{values['loss/d']:.3f}",
                        "g": f"{values['loss/g']:.3f}",
                        "img/s": f"{values['perf/images_per_sec']:.0f}",
                    },
                    refresh=False,
                )
                sums, logged_steps, last_log_images = {}, 0, self.images_seen
                if self.health and self.health.decide(self, values):  # or it raises a RollBack
                    return
                # images/s: the time from here to the next log point (steps, grids, checkpoints);
                # the log point's own work (the health probe's samples, the writes) is left out.
                last_log_time = time.perf_counter()
            if self.step % cfg.sample_every == 0 and self.parallel.is_main:
                self.log_samples()
            if self.evaluator and self.eval_every and self.step % self.eval_every == 0:
                self.evaluate()
            if self.step % cfg.checkpoint_every == 0 or self.checkpoint_clock.due(self.step):
                self.save()

    def _update(self, batches) -> tuple[dict, dict[str, torch.Tensor]]:
        """One step's updates: ``d_steps`` of D, then G, the EMA and the schedulers.
        Returns the last batch and the step's logged values (still on the device)."""
        cfg, model, D, speed = self.cfg, self.model, self.model.D, self.speed
        for _ in range(cfg.d_steps):
            batch = speed.prepare_batch(next(batches))
            with speed.autocast():
                loss_d, logs = model.d_loss(batch)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.compilation.check_peers()  # before the all-reduce: see compile_fallback.py
            self.parallel.reduce_gradients(D)
            self.opt_d.step()
            model.after_d_step()  # e.g. WGAN's weight clipping
        # D's weights need no gradients for G's update; skipping them is free speed. Only the
        # trainable ones are switched off and back on: Freeze-D's frozen blocks stay frozen.
        trainable = [p for p in D.parameters() if p.requires_grad]
        for p in trainable:
            p.requires_grad_(False)
        try:
            with speed.autocast():
                loss_g, logs_g = model.g_loss(batch)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:  # also when compilation fails here: the eager retry trains D again
            for p in trainable:
                p.requires_grad_(True)
        self.compilation.check_peers()
        self.parallel.reduce_gradients(model.G)
        self.opt_g.step()
        if self.ema:
            self.ema.update(model.G)
        for scheduler in self.schedulers:
            scheduler.step()
        # D's gradients are still those of its last step: its weights took none in G's.
        norms = {"health/grad_g": grad_norm(model.G.parameters()), "health/grad_d": grad_norm(D.parameters())}
        return batch, {**logs, **logs_g, **norms}

    # -- torch.compile's fallback (compile_fallback.py) ----------------------
    def compile(self) -> None:
        """``speed.compile``: compile G and D in place. Called once the EMA copy exists
        (a copy of a compiled net would call the original's compiled code)."""
        self.compilation.start(compile_nets(self.model.callable_nets(), self.model.twice_differentiated()))

    @property
    def compiled(self) -> list[torch.nn.Module]:
        """The nets compile() compiled: none after a fallback to eager."""
        return self.compilation.nets

    def _train_eagerly(self, failure: CompileFailed) -> None:
        """After a failed first compiled step: eager nets, and the state from before that step."""
        self.compilation.abandon(failure)
        checkpoint_step = self.checkpoint_step  # the snapshot is no checkpoint: rollback must not aim at it
        self.load_state_dict(failure.snapshot)
        self.checkpoint_step = checkpoint_step
        restore_rng(failure.snapshot["rng"])  # this process's own state, whatever its rank

    # -- non-finite values (guard.py) ----------------------------------------
    def _check_finite(self, values: dict[str, float]) -> None:
        """Stop, or roll back, when a logged value or a weight is NaN/Inf (``guard.py``)."""
        nets = {"G": self.model.G, "D": self.model.D, **({"EMA": self.ema.shadow} if self.ema else {})}
        self.guard.check(values, nets, self.step, self.checkpoint_step, self.rollbacks)

    def _roll_back(self, rollback: RollBack) -> None:
        """Back to the last checkpoint, with the learning rates scaled down (``guard.py``);
        a health diagnosis' rollback is the monitor's (``health/monitor.py``)."""
        if rollback.decision is not None:
            self.health.roll_back(self, rollback.decision)
            return
        failed_at, count = self.step, self.rollbacks + 1
        path = last_checkpoint(self.logger.run_dir)
        self.load_state_dict(self.parallel.from_rank0(lambda: load_checkpoint(path)))
        # The checkpoint's rates already carry the rollbacks made before it was written.
        scale = self.guard.lower_rates(
            (self.opt_g, self.opt_d), self.schedulers, self._lr_factor(self.step), times=count - self.rollbacks
        )
        self.rollbacks = count
        self.guard.report(rollback.problems, failed_at, self.step, scale, count)

    # -- checkpoints (the state: trainer_state.py); samples, evaluations: outputs.py --
    def save(self) -> None:
        """Write last.pt and generator.pt (``trainer_state.py``), unless a weight went
        non-finite: then the previous checkpoint stays as it is (``guard.py`` decides)."""
        self._check_finite({})
        self.write_checkpoints(self.logger.run_dir)
