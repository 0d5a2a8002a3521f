"""The end of a sweep (``gantrain -m``): Hydra calls ``StoppedRunsFail`` once every job has
run (``conf/train.yaml``, ``hydra.callbacks``). A job that ``trainer.on_unhealthy=stop``
stopped says so in one line and lets the sweep go on; the sweep then exits 1 and names those
runs, so that a script or a scheduler watching the exit status learns of them.

Under every launcher: the jobs may run in other processes (joblib, submitit), so the runs
are found on disk, by the ``stopped`` entry their ``health.json`` got in this sweep. Hydra
instantiates the callback for every command, so this module imports no torch."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def stopped_runs(sweep_dir: Path, since: float) -> list[Path]:
    """The runs under ``sweep_dir`` whose ``health.json`` says a diagnosis stopped them,
    written at or after ``since`` (a sweep directory may be reused: older runs are not counted)."""
    from gantrain.health.record import HEALTH_FILE  # imports torch: only at the sweep's end

    runs = []
    for path in sorted(sweep_dir.glob(f"**/{HEALTH_FILE}")):
        try:
            if path.stat().st_mtime >= since and "stopped" in json.loads(path.read_text()):
                runs.append(path.parent)
        except (OSError, ValueError, TypeError):
            continue  # unreadable, or not a record: not a stopped run
    return runs


class StoppedRunsFail(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1  # filesystems keep mtimes coarser than the clock

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        stopped = stopped_runs(sweep_dir, getattr(self, "started", 0.0))
        if stopped:
            names = ", ".join(str(run.relative_to(sweep_dir)) for run in stopped)
            print(
                f"gantrain: unhealthy: {len(stopped)} of the sweep's runs stopped by a diagnosis ({names}); "
                f"`gantrain-doctor {sweep_dir}` says why, their checkpoints are kept",
                file=sys.stderr,
            )
            sys.exit(1)
