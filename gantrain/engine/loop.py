"""The training loop: read it top to bottom.

One step = ``d_steps`` discriminator updates (each on a fresh real batch, each
followed by the loss's constraint on D, e.g. WGAN's clipping) then one generator
update, then the EMA of G's weights when ``ema_decay`` > 0. The step counter counts
generator updates; ``images_seen`` counts real images consumed. Logged values stay on
the device and are summed there; they are read back (one host sync) only every
``log_every`` steps.

Ctrl-C or SIGTERM asks the loop to stop: it finishes the current step, writes a
checkpoint and returns ``"interrupted"``. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch
from tqdm.auto import tqdm

from gantrain.engine.checkpoint import (best_checkpoint, exported_generator, last_checkpoint, save_checkpoint,
                                        write_json)
from gantrain.engine.distributed import SingleProcess
from gantrain.engine.ema import EMA
from gantrain.engine.guard import NonFinite, explain, nonfinite_nets, nonfinite_values
from gantrain.engine.logger import RunLogger
from gantrain.engine.runtime import capture_rng, restore_rng
from gantrain.engine.speed import Speed, compile_nets, uncompile
from gantrain.engine.stop import StopRequest
from gantrain.errors import UserError
from gantrain.checks import at_least, within

log = logging.getLogger("gantrain")

STOP_CHECK_EVERY = 8  # steps between the processes' agreements on a stop request (torchrun)


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
    num_samples: int = 64  # images in the fixed-noise grid
    progress: bool = True  # the tqdm bar
    ema_decay: float = 0.0  # > 0: keep an EMA of G's weights and sample from it
    lr_decay_start: int | None = None  # from this step, learning rates fall linearly to 0
    on_nonfinite: NonFinite = "stop"  # or "rollback" to the last checkpoint with lower learning rates
    max_rollbacks: int = 3
    rollback_lr_scale: float = 0.5

    def __post_init__(self) -> None:
        for name in ("steps", "d_steps", "log_every", "sample_every", "checkpoint_every", "num_samples"):
            at_least(name, getattr(self, name), 1)
        if self.lr_decay_start is not None:
            at_least("lr_decay_start", self.lr_decay_start, 0)
        within("ema_decay", self.ema_decay, 0, 1, "0 turns the EMA off, 0.999 is usual")
        at_least("max_rollbacks", self.max_rollbacks, 0)
        within("rollback_lr_scale", self.rollback_lr_scale, 0, 1, "0.5 halves the learning rates at each rollback",
               closed=(False, True))


class Trainer:
    def __init__(self, model, opt_g, opt_d, stream, logger: RunLogger, cfg: TrainerConfig,
                 device: torch.device, meta: dict, fixed: dict[str, torch.Tensor],
                 validation: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None,
                 evaluator: Evaluator | None = None, speed: Speed | None = None,
                 parallel: SingleProcess | None = None, eval_every: int | None = None) -> None:
        """``fixed``: what every sample grid is drawn from (the model's fixed noise, or
        a fixed validation batch); ``validation``: batches for ``model.validate``;
        ``evaluator``: sample-quality metrics every ``eval_every`` steps (default
        ``evaluator.every``; under data parallelism only rank 0 has an evaluator, and
        every process needs the schedule); ``speed``: the fast path's switches;
        ``parallel``: the data-parallel context (``engine/distributed.py``)."""
        self.model, self.opt_g, self.opt_d = model, opt_g, opt_d
        self.stream, self.logger, self.cfg = stream, logger, cfg
        self.device, self.meta = device, meta
        self.step = 0
        self.images_seen = 0
        self.ema = EMA(model.G, cfg.ema_decay, model.calibration_inputs) if cfg.ema_decay else None
        self.fixed, self.validation, self.evaluator = fixed, validation, evaluator
        self.eval_every = eval_every if eval_every is not None else (evaluator.every if evaluator else 0)
        self.speed = speed or Speed(device=device)
        self.parallel = parallel or SingleProcess()
        self.compiled: list[torch.nn.Module] = []  # nets compiled by compile()
        self._compile_unproven = False  # compiled, and no step has run since
        self.best: dict | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self.rollbacks = 0  # times a non-finite value sent the run back to its checkpoint
        self.checkpoint_step: int | None = None  # the step of the last checkpoint written or loaded
        # Not a bound method: the schedulers would hold the Trainer in a reference cycle,
        # which keeps it (and what it holds, the process groups among them) alive until
        # the garbage collector happens to run.
        self._lr_factor = linear_decay(cfg.lr_decay_start, cfg.steps)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor) for opt in (opt_g, opt_d)]

    # -- state ---------------------------------------------------------------
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
            **self.meta,
        }

    @property
    def sampling_generator(self):
        """The G that samples and exports come from: the EMA copy when there is one."""
        return self.ema.module if self.ema else self.model.G

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
            raise UserError(f"the checkpoint does not fit the configured model ({first}): resume "
                            f"with the run's own model/data settings") from None
        self.stream.load_state_dict(state["stream"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.fixed = state["fixed"]
        self.best = state.get("best")
        self.rollbacks = int(state.get("rollbacks", 0))
        self.checkpoint_step = self.step
        for scheduler, scheduler_state in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(scheduler_state)
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

    def save(self) -> None:
        """Write last.pt and generator.pt, unless a weight went non-finite: then the
        previous checkpoint stays as it is (``_nonfinite`` decides what happens next)."""
        self._guard({}, check_weights=True)
        run_dir = self.logger.run_dir
        # Every process's RNG state, so that a resumed data-parallel run draws what an
        # uninterrupted one would have (a collective: every process calls save()).
        rng_ranks = self.parallel.gather(capture_rng())
        failure = None
        if self.parallel.is_main:
            try:
                save_checkpoint({**self.state_dict(), "rng_ranks": rng_ranks}, last_checkpoint(run_dir))
                save_checkpoint({"generator": self.sampling_generator.state_dict(),
                                 "ema": self.ema is not None, "step": self.step, **self.meta},
                                exported_generator(run_dir))
            except UserError as exc:
                failure = exc
        if self.parallel.any(failure is not None):
            raise failure or UserError("rank 0 could not write the checkpoint (its message says why)")
        self.checkpoint_step = self.step

    def _rng_fork(self):
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def evaluate(self) -> dict:
        """Score samples, log them, write eval/step_<N>.json, keep checkpoints/best.pt."""
        with self._rng_fork():
            report = self.evaluator(self.sampling_generator)
        report["step"] = self.step
        self.logger.scalars({f"eval/{name}": value for name, value in report["metrics"].items()}, self.step)
        self.logger.scalars({f"eval_floor/{name}": value for name, value in report["floor"].items()}, self.step)
        run_dir = self.logger.run_dir
        write_json(Path(run_dir) / "eval" / f"step_{self.step:08d}.json", report)
        metric = self.evaluator.best
        value = report["metrics"].get(metric)
        if value is not None and self.evaluator.is_better(value, self.best["value"] if self.best else None):
            self.best = {"metric": metric, "value": value, "step": self.step}
            save_checkpoint(self.state_dict(), best_checkpoint(run_dir))
            write_json(Path(run_dir) / "eval" / "best.json", {**self.best, "report": report})
        return report

    def log_samples(self) -> None:
        # Sampling and validation must not draw from the training RNG streams (a data
        # loader's seed, say): a run that samples at step N would diverge from one that
        # does not, and resume would no longer match an uninterrupted run.
        with self._rng_fork():
            fixed = {key: value.to(self.device) for key, value in self.fixed.items()}
            images, columns = self.model.sample_grid(fixed, generator=self.sampling_generator)
            self.logger.images("samples", images, self.step, nrow=columns)
            if self.validation is not None:
                metrics = self.model.validate(self.validation(), generator=self.sampling_generator)
                self.logger.scalars(metrics, self.step)

    # -- the loop ------------------------------------------------------------
    def fit(self) -> str:
        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not cfg.progress or not self.parallel.is_main, unit="step",
                   dynamic_ncols=True, desc="train")
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
                    if self.step % cfg.checkpoint_every != 0 or final_eval:
                        self.save()
                    break
                except _RollBack as rollback:
                    self._roll_back(rollback.problems)
                    bar.reset(total=cfg.steps)
                    bar.update(self.step)
                except _CompileFailed as failure:
                    self._train_eagerly(failure)
            bar.close()
        self.logger.flush()
        return "interrupted" if interrupted else "finished"

    def compile(self) -> None:
        """``speed.compile``: compile G and D in place. Called once the EMA copy exists
        (a copy of a compiled net would call the original's compiled code)."""
        loss = self.model.loss
        twice = bool(getattr(loss, "gp_weight", 0) or getattr(loss, "r1_weight", 0))
        self.compiled = compile_nets(self.model.G, self.model.D, differentiates_d_twice=twice)
        self._compile_unproven = bool(self.compiled)

    def _train_eagerly(self, failure: "_CompileFailed") -> None:
        cause = failure.__cause__
        if cause is None:
            log.warning("torch.compile failed at the first step on another process; training without it "
                        "(speed.compile=false skips it)")
        else:
            # Dynamo's message: "backend='inductor' raised:" and, on the next line, the error.
            first = " ".join([line.strip() for line in str(cause).splitlines() if line.strip()][:2])[:300]
            log.warning("torch.compile failed at the first step (%s: %s); training without it "
                        "(speed.compile=false skips it)", type(cause).__name__, first)
        uncompile(self.compiled)
        self.compiled, self._compile_unproven = [], False
        checkpoint_step = self.checkpoint_step  # the snapshot is no checkpoint: rollback must not aim at it
        self.load_state_dict(failure.snapshot)
        self.checkpoint_step = checkpoint_step
        restore_rng(failure.snapshot["rng"])  # this process's own state, whatever its rank

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
            self._check_peers_compiled()
            self.parallel.reduce_gradients(D)
            self.opt_d.step()
            model.after_d_step()  # e.g. WGAN's weight clipping
        # D's weights need no gradients for G's update; skipping them is free speed.
        D.requires_grad_(False)
        try:
            with speed.autocast():
                loss_g, logs_g = model.g_loss(batch)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:  # also when compilation fails here: the eager retry trains D again
            D.requires_grad_(True)
        self._check_peers_compiled()
        self.parallel.reduce_gradients(model.G)
        self.opt_g.step()
        if self.ema:
            self.ema.update(model.G)
        for scheduler in self.schedulers:
            scheduler.step()
        return batch, {**logs, **logs_g}

    def _first_compiled_update(self, batches) -> tuple[dict, dict[str, torch.Tensor]]:
        """The first step after compile(): compilation runs here, so a failure here
        restores the state from before the step and trains eagerly instead, on every
        process alike (``_check_peers_compiled``)."""
        snapshot = _copy_to_cpu(self.state_dict())  # on the GPU it would double the memory in use
        try:
            result = self._update(batches)
            self._check_peers_compiled()
        except (UserError, torch.OutOfMemoryError, KeyboardInterrupt):
            raise
        except _PeerCompileFailed:
            raise _CompileFailed(snapshot) from None
        except Exception as exc:
            if self.parallel.world > 1:
                self.parallel.any(True)  # tell the others, at their next check
            raise _CompileFailed(snapshot) from exc
        self._compile_unproven = False
        return result

    def _check_peers_compiled(self) -> None:
        """Under data parallelism, in the first compiled step only: before each gradient
        all-reduce and at the end, every process says whether its compilation failed (a
        process that fails says so at once, in place of its next check). So the
        collectives stay paired, and all processes fall back together, not some
        waiting forever for the others' all-reduce."""
        if self._compile_unproven and self.parallel.world > 1 and self.parallel.any(False):
            raise _PeerCompileFailed

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
                (self.parallel.world == 1 or self.step % STOP_CHECK_EVERY == 0)
                and self.parallel.any(stop.requested)):
            if self._compile_unproven:
                batch, step_logs = self._first_compiled_update(batches)
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
                self._guard(values, check_weights=True)
                values["perf/images_per_sec"] = (self.images_seen - last_log_images) / max(now - last_log_time, 1e-9)
                values["lr/g"] = self.opt_g.param_groups[0]["lr"]
                values["lr/d"] = self.opt_d.param_groups[0]["lr"]
                self.logger.scalars(values, self.step)
                bar.set_postfix({"d": f"{values['loss/d']:.3f}", "g": f"{values['loss/g']:.3f}",
                                 "img/s": f"{values['perf/images_per_sec']:.0f}"}, refresh=False)
                sums, logged_steps, last_log_time, last_log_images = {}, 0, now, self.images_seen
            if self.step % cfg.sample_every == 0 and self.parallel.is_main:
                self.log_samples()
            if self.evaluator and self.eval_every and self.step % self.eval_every == 0:
                self.evaluate()
            if self.step % cfg.checkpoint_every == 0:
                self.save()

    # -- non-finite values ---------------------------------------------------
    def _guard(self, values: dict[str, float], check_weights: bool) -> None:
        """Stop, or roll back, when a logged value or (with ``check_weights``) a weight is NaN/Inf."""
        problems = nonfinite_values(values)
        if check_weights:
            nets = {"G": self.model.G, "D": self.model.D, **({"EMA": self.ema.shadow} if self.ema else {})}
            problems += nonfinite_nets(nets)
        # Every process decides alike (they would otherwise wait on each other forever).
        if not self.parallel.any(bool(problems)):
            return
        problems = problems or ["a value on another process"]
        # checkpoint_step, not the file: every process knows it, also where only rank 0's
        # machine holds the run directory.
        can_roll_back = (self.cfg.on_nonfinite == "rollback" and self.rollbacks < self.cfg.max_rollbacks
                         and self.checkpoint_step is not None)
        if can_roll_back:
            raise _RollBack(problems)
        raise UserError(explain(problems, self.step, self.checkpoint_step, self.cfg.on_nonfinite))

    def _roll_back(self, problems: list[str]) -> None:
        """Back to the last checkpoint, with the learning rates scaled down (repeating the
        same steps at the same rates would diverge the same way)."""
        from gantrain.engine.checkpoint import load_checkpoint

        failed_at, count = self.step, self.rollbacks + 1
        path = last_checkpoint(self.logger.run_dir)
        self.load_state_dict(self.parallel.from_rank0(lambda: load_checkpoint(path)))
        # The checkpoint's rates already carry the rollbacks made before it was written.
        scale = self.cfg.rollback_lr_scale ** (count - self.rollbacks)
        self.rollbacks = count
        for optimizer, scheduler in zip((self.opt_g, self.opt_d), self.schedulers):
            # LambdaLR sets lr = base_lr * factor at every step: scale the base too.
            scheduler.base_lrs = [base * scale for base in scheduler.base_lrs]
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * self._lr_factor(self.step)
        self.logger.scalars({"nonfinite/rollbacks": self.rollbacks}, self.step)
        self.logger.text("nonfinite", f"{', '.join(problems)} non-finite at step {failed_at}: rolled back "
                         f"to step {self.step}, learning rates x{scale:g} (rollback {count})", self.step)
        log.warning("%s non-finite at step %d: rolled back to step %d, learning rates x%g (rollback %d of %d)",
                    ", ".join(problems), failed_at, self.step, scale, count, self.cfg.max_rollbacks)


def linear_decay(start: int | None, end: int) -> Callable[[int], float]:
    """The learning-rate factor at a step: constant, then linear decay to 0 at ``end``
    from ``start`` on (pix2pix and CycleGAN's schedule). A plain function, which
    LambdaLR leaves out of its state dict (a resumed run may have a new ``end``)."""
    def factor(step: int) -> float:
        if start is None or step < start:
            return 1.0
        return max(0.0, (end - step) / max(end - start, 1))
    return factor


class _RollBack(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


class _PeerCompileFailed(Exception):
    """Another process's torch.compile failed in the first step."""


def _copy_to_cpu(value):
    """A deep copy of a state with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _copy_to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_to_cpu(item) for item in value)
    return copy.deepcopy(value)


class _CompileFailed(Exception):
    """torch.compile failed in the first step; ``snapshot`` is the state from before it."""

    def __init__(self, snapshot: dict) -> None:
        super().__init__("torch.compile failed")
        self.snapshot = snapshot
