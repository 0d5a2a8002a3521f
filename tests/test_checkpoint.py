"""Checkpoints are written atomically and loaded without running pickled code."""

import os

import pytest
import torch

from gantrain.engine.checkpoint import load_checkpoint, save_checkpoint
from gantrain.errors import UserError


def test_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"step": 3, "w": torch.arange(4.0), "config": "a: 1\n"}, path)
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(UserError, match="No space left on device.*previous checkpoint there is intact"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]  # no temporary file left behind


# A checkpoint that would run code: tests/test_safety.py.
