"""The files of a run's health (``monitor.py`` writes them): ``RUN/health.json``, the
record of its diagnoses and of what ``trainer.on_unhealthy`` did, and
``checkpoints/healthy.pt``, the last checkpoint written while no diagnosis held."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gantrain.atomic import atomic_write
from gantrain.engine.checkpoint import CHECKPOINT_DIR
from gantrain.errors import UserError

HEALTH_FILE = "health.json"
HEALTHY = "healthy.pt"


def healthy_checkpoint(run_dir: str | Path) -> Path:
    """The last checkpoint written while no diagnosis held (``on_unhealthy=rollback``)."""
    return Path(run_dir) / CHECKPOINT_DIR / HEALTHY


def keep_copy(source: Path, target: Path) -> None:
    """``target`` becomes what ``source`` is now, atomically. A hard link costs no copy: a
    checkpoint is replaced by a rename, never rewritten in place, so the link keeps today's
    file. Where links are refused (some network and Windows filesystems), an atomic copy."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # removed as stale if a crash leaves it
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
            os.replace(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)
            with open(source, "rb") as f:
                atomic_write(target, lambda out: shutil.copyfileobj(f, out))
    except OSError as exc:
        raise UserError(
            f"cannot write {target} ({exc.strerror or exc}): free disk space or make {target.parent} "
            f"writable, then continue with resume="
        ) from None


def stop_message(run_dir: str | Path) -> str:
    """The line a run that a diagnosis stopped ends with (from its ``health.json``)."""
    try:
        record = json.loads((Path(run_dir) / HEALTH_FILE).read_text())
        message = record["stopped"]["message"]
    except (OSError, ValueError, KeyError, TypeError):
        message = f"a health diagnosis stopped the run (see {Path(run_dir) / HEALTH_FILE})"
    return f"{message}; the run's checkpoint is kept in {run_dir}"
