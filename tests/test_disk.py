"""Disk faults: a checkpoint that cannot be written (disk full mid-write, a read-only
folder) stops the run with one line and leaves the previous checkpoint whole."""

import errno
import os

import pytest
import torch
from conftest import TINY, compose_config

from gantrain.build import build_trainer
from gantrain.engine import checkpoint as checkpoint_module
from gantrain.engine.checkpoint import load_checkpoint
from gantrain.errors import UserError

BASE = [*TINY, "trainer.steps=6", "trainer.log_every=2", "trainer.checkpoint_every=2"]


def _trainer(run_dir):
    return build_trainer(compose_config(BASE), run_dir, BASE)


def _fail_after(monkeypatch, saves: int, error: OSError, partial: bool) -> None:
    """torch.save works ``saves`` times, then writes part of the file and raises ``error``."""
    real_save, count = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        count["n"] += 1
        if count["n"] > saves:
            if partial:
                f.write(b"\x80\x02half a checkpoint")
            raise error
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save)


@pytest.mark.parametrize(
    "error, partial, words",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True, "No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), False, "Permission denied"),
    ],
)
def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_previous_one(tmp_path, monkeypatch, error, partial, words):
    run_dir = tmp_path / "run"
    trainer = _trainer(run_dir)
    _fail_after(monkeypatch, saves=2, error=error, partial=partial)  # step 2: last.pt + generator.pt
    with pytest.raises(UserError) as raised:
        trainer.fit()
    message = str(raised.value)
    assert words in message and "the previous checkpoint there is intact" in message and "resume=" in message
    monkeypatch.undo()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_checkpoint_folder_is_one_line(tmp_path):
    run_dir = tmp_path / "run"
    trainer = _trainer(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    os.chmod(run_dir / "checkpoints", 0o555)
    try:
        with pytest.raises(UserError, match="cannot write checkpoint .*writable"):
            trainer.fit()
    finally:
        os.chmod(run_dir / "checkpoints", 0o755)
