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

import math
import signal
import threading
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from gantrain.engine.checkpoint import exported_generator, last_checkpoint, save_checkpoint
from gantrain.engine.ema import EMA
from gantrain.engine.logger import RunLogger
from gantrain.engine.runtime import capture_rng, restore_rng
from gantrain.errors import UserError
from gantrain.validate import at_least


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

    def __post_init__(self) -> None:
        for name in ("steps", "d_steps", "log_every", "sample_every", "checkpoint_every", "num_samples"):
            at_least(f"trainer.{name}", getattr(self, name), 1)
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"trainer.ema_decay={self.ema_decay} must lie in [0, 1): 0 turns the "
                            f"EMA off, 0.999 is usual")


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user really wants out
        self.requested = True

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    def __init__(self, model, opt_g, opt_d, stream, logger: RunLogger, cfg: TrainerConfig,
                 device: torch.device, meta: dict, seed: int) -> None:
        self.model, self.opt_g, self.opt_d = model, opt_g, opt_d
        self.stream, self.logger, self.cfg = stream, logger, cfg
        self.device, self.meta = device, meta
        self.step = 0
        self.images_seen = 0
        self.ema = EMA(model.G, cfg.ema_decay) if cfg.ema_decay else None
        self.fixed_z, self.fixed_y, self.grid_columns = self._fixed_inputs(seed)

    def _fixed_inputs(self, seed: int):
        """Noise for the sample grids: fixed for the whole run, from its own generator so
        that it takes nothing from the training RNG. Conditional: one row per class."""
        classes = self.model.num_classes
        columns = max(1, self.cfg.num_samples // classes) if classes else math.ceil(math.sqrt(self.cfg.num_samples))
        n = columns * classes if classes else self.cfg.num_samples
        z = torch.randn(n, self.model.z_dim, generator=torch.Generator().manual_seed(seed))
        y = torch.arange(classes).repeat_interleave(columns) if classes else None
        return z, y, columns

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "images_seen": self.images_seen,
            "model": self.model.state_dict(),
            "optim": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "stream": self.stream.state_dict(),
            "rng": capture_rng(),
            "fixed_z": self.fixed_z,
            "fixed_y": self.fixed_y,
            **({"ema": self.ema.state_dict()} if self.ema else {}),
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
                self.ema = EMA(self.model.G, self.cfg.ema_decay)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"the checkpoint does not fit the configured model ({first}): resume "
                            f"with the run's own model/data settings") from None
        self.stream.load_state_dict(state["stream"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.fixed_z, self.fixed_y = state["fixed_z"], state["fixed_y"]
        restore_rng(state["rng"])

    def save(self) -> None:
        run_dir = self.logger.run_dir
        save_checkpoint(self.state_dict(), last_checkpoint(run_dir))
        save_checkpoint({"generator": self.sampling_generator.state_dict(),
                         "ema": self.ema is not None, "step": self.step, **self.meta},
                        exported_generator(run_dir))

    def log_samples(self) -> None:
        z = self.fixed_z.to(self.device)
        y = None if self.fixed_y is None else self.fixed_y.to(self.device)
        images = self.model.sample(z, y, generator=self.sampling_generator)
        self.logger.images("samples", images, self.step, nrow=self.grid_columns)

    # -- the loop ------------------------------------------------------------
    def fit(self) -> str:
        cfg, model, D = self.cfg, self.model, self.model.D
        batches = iter(self.stream)
        sums: dict[str, torch.Tensor] = {}
        logged_steps, last_log_time, last_log_images = 0, time.perf_counter(), self.images_seen
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not cfg.progress, unit="step",
                   dynamic_ncols=True, desc="train")
        with StopRequest() as stop:
            while self.step < cfg.steps and not stop.requested:
                for _ in range(cfg.d_steps):
                    batch = next(batches)
                    loss_d, logs = model.d_loss(batch)
                    self.opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    self.opt_d.step()
                    model.after_d_step()  # e.g. WGAN's weight clipping
                # D's weights need no gradients for G's update; skipping them is free speed.
                D.requires_grad_(False)
                loss_g, logs_g = model.g_loss(batch)
                self.opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                self.opt_g.step()
                D.requires_grad_(True)
                if self.ema:
                    self.ema.update(model.G)

                self.step += 1
                self.images_seen += cfg.d_steps * batch["image"].shape[0]
                for tag, value in {**logs, **logs_g}.items():
                    sums[tag] = sums[tag] + value if tag in sums else value.clone()
                logged_steps += 1
                bar.update(1)

                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    values = {tag: float(total) / logged_steps for tag, total in sums.items()}
                    self._check_finite(values)
                    values["perf/images_per_sec"] = (self.images_seen - last_log_images) / max(now - last_log_time, 1e-9)
                    values["lr/g"] = self.opt_g.param_groups[0]["lr"]
                    values["lr/d"] = self.opt_d.param_groups[0]["lr"]
                    self.logger.scalars(values, self.step)
                    bar.set_postfix({"d": f"{values['loss/d']:.3f}", "g": f"{values['loss/g']:.3f}",
                                     "img/s": f"{values['perf/images_per_sec']:.0f}"}, refresh=False)
                    sums, logged_steps, last_log_time, last_log_images = {}, 0, now, self.images_seen
                if self.step % cfg.sample_every == 0:
                    self.log_samples()
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
            bar.close()
            interrupted = stop.requested and self.step < cfg.steps
            if self.step % cfg.sample_every != 0:
                self.log_samples()
            if self.step % cfg.checkpoint_every != 0:
                self.save()
        self.logger.flush()
        return "interrupted" if interrupted else "finished"

    def _check_finite(self, values: dict[str, float]) -> None:
        bad = [tag for tag, value in values.items() if not math.isfinite(value)]
        if bad:
            raise UserError(f"{', '.join(bad)} became non-finite by step {self.step}; the last good "
                            f"checkpoint is kept. Lower the learning rates (optim.g.lr, optim.d.lr) "
                            f"or try another loss")
