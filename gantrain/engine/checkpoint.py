"""Checkpoints: full training state, written atomically, loaded without unpickling code.

``last.pt`` holds the whole training state; ``generator.pt`` only the generator that
samples should come from (the EMA copy when there is one) with the config that
rebuilds it. A checkpoint is a dict of state dicts, tensors and plain values (never pickled
objects), so ``torch.load(weights_only=True)`` reads it. Writing goes to a temporary
file in the same folder, is flushed to disk, then renamed over the old one: a crash
at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from gantrain.atomic import atomic_write
from gantrain.errors import UserError

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
GENERATOR = "generator.pt"
FORMAT_VERSION = 1
WRITTEN_DIRS = (CHECKPOINT_DIR, "samples", "eval")  # the folders a run writes files into atomically


def last_checkpoint(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LAST


def best_checkpoint(run_dir: str | Path) -> Path:
    """The full state at the best evaluation so far (``eval.best``)."""
    return Path(run_dir) / CHECKPOINT_DIR / "best.pt"


def write_json(path: Path, data: dict) -> None:
    """Atomically, like the checkpoints: a reader never sees half a file."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True) + "\n"), binary=False)


def exported_generator(run_dir: str | Path) -> Path:
    """The generator alone, for sampling: the EMA weights when the run keeps an EMA."""
    return Path(run_dir) / CHECKPOINT_DIR / GENERATOR


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Half-written temporaries of a process killed mid-write (``.last.pt.XXXX.tmp``, a
    sample grid's, an evaluation report's); the files themselves are whole. Called when a
    run (re)starts, holding the run lock (``lock.py``): no live writer owns them."""
    stale = sorted(p for folder in WRITTEN_DIRS for p in (Path(run_dir) / folder).glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Atomically; a write that fails (disk full, read-only folder) is one line, and the
    previous checkpoint at ``path`` is left as it was."""
    path = Path(path)
    try:
        atomic_write(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **state}, f))
        # Make the rename itself durable.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        kept = "the previous checkpoint there is intact" if path.is_file() else "no earlier checkpoint there"
        raise UserError(
            f"cannot write checkpoint {path} ({exc.strerror or exc}): free disk space or make "
            f"{path.parent} writable, then continue with resume=; {kept}"
        ) from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: point resume= at a run directory that holds {CHECKPOINT_DIR}/{LAST}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot read checkpoint {path} ({reason}): it is corrupt or not a gantrain checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} is not a gantrain checkpoint (format {FORMAT_VERSION} expected)")
    return state
