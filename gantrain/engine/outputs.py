"""What a run shows of itself besides its scalars: the sample grids (and a translator's
validation metrics) every ``sample_every`` steps, and the evaluations every ``eval.every``
steps with ``checkpoints/best.pt``. Both draw nothing from the training RNG streams, so a
resumed run matches one that never stopped. ``loop.Trainer`` inherits these methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gantrain.engine.checkpoint import best_checkpoint, save_checkpoint, write_json
from gantrain.engine.trainer_config import Evaluator
from gantrain.engine.trainer_state import TrainerState


class TrainerOutputs(TrainerState):
    """Samples and evaluations of ``loop.Trainer``, which sets these attributes."""

    device: torch.device
    evaluator: Evaluator | None
    logger: Any  # engine/logger.py's RunLogger
    validation: Any  # model.validation's batches, or None

    def _rng_fork(self):
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def evaluate(self) -> dict:
        """Score samples, log them, write eval/step_<N>.json, keep checkpoints/best.pt."""
        with self._rng_fork():
            report = self.evaluator(self.sampling_generator)
        report["step"] = self.step
        self.logger.scalars({f"eval/{name}": value for name, value in report["metrics"].items()}, self.step)
        self.logger.scalars({f"eval_floor/{name}": value for name, value in report["floor"].items()}, self.step)
        if self.health:
            self.health.evaluated(report, self.step)
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
