"""The health monitor: what a training run does with its health signals (``signals.py``).

The loop hands it the values it logged at each log point (``decide``), after ``measure``
has added the signals that need a host sync (weight norms, the ``SampleProbe``'s diversity,
class entropy and held-out accuracy), and the evaluator's reports (``evaluated``). It keeps
the run's ``History`` and asks ``diagnose`` (``diagnose.py``) which diagnoses hold. A
diagnosis that starts is said once: one console warning (cause, step, explanation, the
overrides to try), a TensorBoard text ``health``; ``health/unhealthy`` (1 while any holds)
is logged at every log point, and ``RUN/health.json`` ({"verdict", "episodes", "actions"})
is rewritten, atomically, whenever that changes. Then ``trainer.on_unhealthy``:

* ``warn``: nothing more.
* ``stop``: the loop stops at that log point as after an interrupt (final samples,
  evaluation, checkpoint); ``fit`` returns ``"unhealthy"`` and the CLI exits with status 1
  and one line (``record.stop_message``).
* ``rollback``: back to ``checkpoints/healthy.pt``, the last checkpoint written while no
  diagnosis held (kept as a hard link to, or an atomic copy of, that ``last.pt``), with the
  diagnosis' fix: ``lower_lr`` scales both learning rates by ``trainer.rollback_lr_scale``
  (``Guard.lower_rates``, as a non-finite rollback does); ``augment`` switches on DiffAugment
  (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training", with
  its small-data policy color, translation, cutout), which has no state, when the run
  augments nothing. A rollback counts against ``trainer.max_rollbacks``; the action is
  recorded in health.json and in the trainer's state_dict, so a resume re-applies it. With
  no fix to apply (``no_progress``), no healthy checkpoint or no rollbacks left, it stops.

Under torchrun rank 0 alone observes (it alone has the evaluator and the probe; the logged
values are the processes' mean), and every process acts on the decision it broadcasts.

The rules are those of ``diagnose`` with its default ``Thresholds``; tests replace
``gantrain.health.monitor.diagnose`` to force a diagnosis.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from gantrain.engine.checkpoint import last_checkpoint, load_checkpoint, write_json
from gantrain.engine.guard import RollBack
from gantrain.engine.trainer_config import OnUnhealthy
from gantrain.health.diagnose import Diagnosis, Episode, diagnose, verdict
from gantrain.health.history import History, RunContext
from gantrain.health.record import HEALTH_FILE, healthy_checkpoint, keep_copy
from gantrain.health.signals import SampleProbe, weight_norm

log = logging.getLogger("gantrain")

KEPT = ("loss/", "health/", "eval/")  # the tags the rules read: the history (and checkpoints) keep these


def weight_norms(model) -> dict[str, float]:
    """``health/weight_g`` and ``health/weight_d``, read back in one host sync."""
    norms = torch.stack([weight_norm(model.G), weight_norm(model.D)]).tolist()
    return {"health/weight_g": norms[0], "health/weight_d": norms[1]}


@dataclass(frozen=True)
class Decision:
    """What rank 0 decided at a log point; every process acts on it alike."""

    action: str  # "stop" or "rollback"
    step: int
    causes: tuple[str, ...]
    fixes: tuple[str, ...]  # rollback: the fixes to apply, "lower_lr" and/or "augment"
    message: str  # one line: the causes, the evidence, the overrides to try


class UnhealthyRollBack(RollBack):
    """Raised by ``HealthMonitor.decide``: the loop's rollback path calls ``roll_back``."""

    def __init__(self, decision: Decision) -> None:
        super().__init__([f"health: {', '.join(decision.causes)}"])
        self.decision = decision


def _line(d: Diagnosis) -> str:
    text = f"{d.cause} at step {d.step}: {' '.join(d.explanation.split())}"
    return text + (f" Try: {' '.join(d.overrides)}" if d.overrides else "")


def _episode(record: dict) -> Episode:
    return Episode(**{**record, "overrides": tuple(record.get("overrides", ()))})


class HealthMonitor:
    """The run's health (see the module). ``context``: what the rules know of the run;
    ``mode``: ``trainer.on_unhealthy``; ``probe``: the sample signals (rank 0, noise models);
    ``make_augment``: the DiffAugment the ``augment`` fix switches on (None: the fix cannot be
    applied, and a rollback that needs it stops instead)."""

    def __init__(
        self,
        context: RunContext,
        mode: OnUnhealthy,
        run_dir: str | Path,
        probe: SampleProbe | None = None,
        make_augment: Callable[[], nn.Module] | None = None,
    ) -> None:
        self.context, self.mode, self.run_dir = context, mode, Path(run_dir)
        self.probe, self.make_augment = probe, make_augment
        self.history: History = {}
        self.episodes: list[Episode] = []
        self.actions: list[dict] = []  # what on_unhealthy did: each rollback, with its fixes
        self.active: dict[str, Episode] = {}  # cause -> its open episode
        self.last_step: int | None = None  # the last log point this process saw (None: none yet)
        self.stopped: Decision | None = None

    # -- at each log point -----------------------------------------------------------
    def measure(self, trainer) -> dict[str, float]:
        """The signals read at the log interval: ``health/weight_g``, ``health/weight_d`` (one
        host sync for both) and the probe's. Rank 0 only: the others log nothing."""
        if not trainer.parallel.is_main:
            return {}
        values = weight_norms(trainer.model)
        if self.probe is not None:
            values.update(self.probe(trainer.sampling_generator))
        return values

    def at_start(self, trainer) -> None:
        """A fresh run's weight norms at step 0, before any update: what ``divergence``
        measures growth from (a rate far too high moves the weights most in the first
        steps, before the first log point)."""
        if trainer.parallel.is_main and trainer.step == 0 and "health/weight_g" not in self.history:
            values = weight_norms(trainer.model)
            for tag, value in values.items():
                self._add(tag, 0, value)
            trainer.logger.scalars(values, 0)

    def evaluated(self, report: dict, step: int) -> None:
        """An evaluation's metrics, as the loop logs them (``eval/<name>``)."""
        for name, value in report.get("metrics", {}).items():
            self._add(f"eval/{name}", step, value)

    def decide(self, trainer, values: dict[str, float]) -> bool:
        """Observe the log point's ``values``; True: the run stops here (``on_unhealthy=stop``).
        Raises ``UnhealthyRollBack`` for a rollback. Every process returns (or raises) alike."""
        decision = self._observe(trainer, values) if trainer.parallel.is_main else None
        if trainer.parallel.world > 1:
            decision = trainer.parallel.broadcast(decision)
        self.last_step = trainer.step
        if decision is None:
            return False
        if decision.action == "rollback":
            raise UnhealthyRollBack(decision)
        self.stopped = decision
        return True

    def _add(self, tag: str, step: int, value: float) -> None:
        if tag.startswith(KEPT) and isinstance(value, (int, float)) and math.isfinite(value):
            points = self.history.setdefault(tag, [])
            if points and points[-1][0] >= step:  # a step logged again (the final evaluation's)
                points[:] = [p for p in points if p[0] < step]
            points.append((step, float(value)))

    def _observe(self, trainer, values: dict[str, float]) -> Decision | None:
        step, first = trainer.step, self.last_step is None
        self.last_step = step
        for tag, value in values.items():
            self._add(tag, step, value)
        found = {d.cause: d for d in diagnose(self.history, self.context)}
        ended = [cause for cause in self.active if cause not in found]
        for cause in ended:
            self.active.pop(cause).end = step
            trainer.logger.text("health", f"{cause} no longer holds at step {step}", step)
        started = [d for cause, d in found.items() if cause not in self.active]
        for d in started:
            self.active[d.cause] = Episode(d.cause, step, None, d.explanation, tuple(d.overrides))
            self.episodes.append(self.active[d.cause])
            log.warning("unhealthy: %s", _line(d))
            trainer.logger.text("health", _line(d), step)
        trainer.logger.scalars({"health/unhealthy": float(bool(self.active))}, step)
        decision = self._decision(trainer, started) if started and self.mode != "warn" else None
        if decision is not None and decision.action == "stop":
            self.stopped = decision
        if first or started or ended or decision or step >= trainer.cfg.steps:
            self.write()
        return decision

    def _decision(self, trainer, started: list[Diagnosis]) -> Decision:
        step, causes = trainer.step, tuple(d.cause for d in started)
        message = "; ".join(_line(d) for d in started)
        if self.mode == "stop":
            return Decision("stop", step, causes, (), message)
        fixes = tuple(dict.fromkeys(d.fix for d in started if d.fix in ("lower_lr", "augment")))
        if "augment" in fixes and (trainer.model.augment is not None or self.make_augment is None):
            fixes = tuple(fix for fix in fixes if fix != "augment")  # it augments already: nothing to switch on
        why = None
        if not fixes:
            why = "no rollback fixes this"
        elif trainer.rollbacks >= trainer.cfg.max_rollbacks:
            why = f"its {trainer.cfg.max_rollbacks} rollbacks (trainer.max_rollbacks) are used up"
        elif not healthy_checkpoint(self.run_dir).is_file():
            why = "no checkpoint was written while the run was healthy"
        if why:
            return Decision("stop", step, causes, (), f"{message} (on_unhealthy=rollback stopped the run: {why})")
        return Decision("rollback", step, causes, fixes, message)

    # -- on_unhealthy=rollback ---------------------------------------------------------
    def roll_back(self, trainer, decision: Decision) -> None:
        """Back to ``healthy.pt`` with the decision's fixes (every process)."""
        failed_at, count = trainer.step, trainer.rollbacks + 1
        # The rates as they are now (earlier rollbacks' scaling included): a rollback never raises them.
        bases = [list(scheduler.base_lrs) for scheduler in trainer.schedulers]
        path = healthy_checkpoint(self.run_dir)
        trainer.load_state_dict(trainer.parallel.from_rank0(lambda: load_checkpoint(path)))
        for scheduler, base in zip(trainer.schedulers, bases):
            scheduler.base_lrs = base
        scale = trainer.guard.lower_rates(
            (trainer.opt_g, trainer.opt_d),
            trainer.schedulers,
            trainer._lr_factor(trainer.step),
            times=int("lower_lr" in decision.fixes),
        )
        trainer.rollbacks = count
        action = {
            "action": "rollback",
            "step": failed_at,
            "to_step": trainer.step,
            "causes": list(decision.causes),
            "fixes": list(decision.fixes),
            "lr_scale": scale,
            "rollback": count,
        }
        if "augment" in decision.fixes:
            action["augment"] = "diffaugment"
        self.actions.append(action)
        self._apply(trainer)
        what = [f"learning rates x{scale:g}"] if "lower_lr" in decision.fixes else []
        what += ["DiffAugment switched on"] if "augment" in decision.fixes else []
        text = (
            f"{', '.join(decision.causes)} at step {failed_at}: rolled back to step {trainer.step} "
            f"({path.name}), {' and '.join(what)} (rollback {count} of {trainer.cfg.max_rollbacks})"
        )
        trainer.logger.scalars({"health/rollbacks": count}, trainer.step)
        trainer.logger.text("health", text, trainer.step)
        if trainer.parallel.is_main:
            log.warning("unhealthy: %s", text)
            self.write()

    def _apply(self, trainer) -> None:
        """The recorded actions' lasting changes (DiffAugment), and the context the rules see."""
        if any(a.get("augment") for a in self.actions) and trainer.model.augment is None and self.make_augment:
            trainer.model.augment = self.make_augment().to(next(trainer.model.D.parameters()).device)
        augment = type(trainer.model.augment).__name__.lower() if trainer.model.augment is not None else "none"
        lr_g, lr_d = (scheduler.base_lrs[0] for scheduler in trainer.schedulers)
        self.context = replace(self.context, augment=augment, lr_g=lr_g, lr_d=lr_d)

    def keep_healthy(self, run_dir: str | Path) -> None:
        """After rank 0 wrote ``last.pt``: make it ``healthy.pt`` too when no diagnosis holds
        (``rollback`` only)."""
        if self.mode == "rollback" and not self.active:
            keep_copy(last_checkpoint(run_dir), healthy_checkpoint(run_dir))

    # -- the record: health.json and the checkpoint ---------------------------------
    def record(self) -> dict:
        """What ``RUN/health.json`` holds."""
        record = {
            "verdict": verdict(self.episodes, self.last_step),
            "episodes": [asdict(e) for e in self.episodes],
            "actions": self.actions,
            "on_unhealthy": self.mode,
            "step": self.last_step,  # the log step of this record
            # What the config alone does not say (the dataset's size and labels): the doctor
            # reads them back, so it judges a run as the monitor did.
            "data": {"train_images": self.context.train_images, "labelled": self.context.labelled},
        }
        if self.stopped is not None:
            record["stopped"] = {
                "step": self.stopped.step,
                "causes": list(self.stopped.causes),
                "message": self.stopped.message,
            }
        return record

    def write(self) -> None:
        write_json(self.run_dir / HEALTH_FILE, self.record())

    def state_dict(self) -> dict:
        """Plain values and tensors (checkpoints load with ``weights_only=True``)."""
        return {
            "history": {tag: torch.tensor(points, dtype=torch.float64) for tag, points in self.history.items()},
            "episodes": [asdict(e) for e in self.episodes],
            "actions": [dict(a) for a in self.actions],
        }

    def load_state_dict(self, state: dict | None, trainer) -> None:
        """A checkpoint's health state (None: one from before health existed). In this
        process after a log point (a rollback) the record in memory stays and what was open
        ends; in a resumed run the checkpoint's record comes back, its open episodes open.
        Either way the history is the checkpoint's, and the actions are re-applied."""
        step = trainer.step
        if state and "history" in state:
            self.history = {tag: [(int(s), float(v)) for s, v in t.tolist()] for tag, t in state["history"].items()}
        else:
            self.history = {tag: [p for p in points if p[0] <= step] for tag, points in self.history.items()}
        if self.last_step is not None:
            for episode in self.active.values():
                episode.end = self.last_step
            self.active = {}
        elif state:
            self.episodes = [_episode(e) for e in state.get("episodes", [])]
            self.actions = [dict(a) for a in state.get("actions", [])]
            self.active = {e.cause: e for e in self.episodes if e.end is None}
        self._apply(trainer)
