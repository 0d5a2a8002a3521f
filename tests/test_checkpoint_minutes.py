"""trainer.checkpoint_minutes: a checkpoint once that much wall time has passed since the
last one, whatever the step speed; it changes nothing in the training itself, so a run
resumed from a checkpoint written by time ends with an uninterrupted run's weights.
The clock is replaced (each step takes half a minute of it): no test sleeps."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, checkpoint, compose_config, gantrain, train

from gantrain.config_check import check_config
from gantrain.engine import checkpoint_clock
from gantrain.engine.checkpoint_clock import CHECK_EVERY, CheckpointClock
from gantrain.engine.distributed import SingleProcess
from gantrain.engine.loop import Trainer
from gantrain.engine.trainer_state import TrainerState
from gantrain.errors import UserError

BASE = [
    *TINY,
    "trainer.checkpoint_every=1000",
    "trainer.sample_every=1000",
    "data=synthetic",
    "data.size=40",
    "data.image_size=16",
]
STEP_SECONDS = 30.0


class Killed(Exception):
    """Stands for a SIGKILL: the run ends where it is, with no last checkpoint."""


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.kill_at: int | None = None  # the step the run is killed in

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> tuple[Clock, list[int]]:
    """The fake clock, and the steps at which checkpoints were written."""
    fake, written = Clock(), []
    monkeypatch.setattr(checkpoint_clock, "now", fake)
    update, write = Trainer._update, TrainerState.write_checkpoints

    def timed_update(self, batches):
        if fake.kill_at == self.step + 1:
            raise Killed
        fake.t += STEP_SECONDS
        return update(self, batches)

    def recorded_write(self, run_dir) -> None:
        write(self, run_dir)
        written.append(self.step)

    monkeypatch.setattr(Trainer, "_update", timed_update)
    monkeypatch.setattr(TrainerState, "write_checkpoints", recorded_write)
    return fake, written


@pytest.mark.parametrize("minutes,expected", [(1, [2, 4, 6, 7]), (0.5, [1, 2, 3, 4, 5, 6, 7]), (0, [7]), (None, [7])])
def test_checkpoints_follow_the_clock_beside_the_step_count(tmp_path, clock, minutes, expected):
    _, written = clock
    value = "null" if minutes is None else minutes
    train(tmp_path / "run", [*BASE, "trainer.steps=7", f"trainer.checkpoint_minutes={value}"])
    assert written == expected  # the last step's checkpoint is written once, not twice


@pytest.mark.slow
def test_resume_from_a_checkpoint_written_by_time_is_exact(tmp_path, clock):
    fake, written = clock
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(straight, [*BASE, "trainer.steps=8", "trainer.checkpoint_minutes=0"])
    fake.kill_at, written[:] = 6, []
    with pytest.raises(Killed):  # killed in step 6: step 5's checkpoint, written by time, is the last
        train(killed, [*BASE, "trainer.steps=8", "trainer.checkpoint_minutes=0.5"])
    assert written == [1, 2, 3, 4, 5] and checkpoint(killed)["step"] == 5
    fake.kill_at = None
    train(killed, [*BASE, "trainer.steps=8", "trainer.checkpoint_minutes=0.5", f"resume={killed}"])
    a, b = checkpoint(straight), checkpoint(killed)
    assert b["step"] == 8 and b["images_seen"] == a["images_seen"] and a["stream"] == b["stream"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for side in ("g", "d"):
        for k, state in a["optim"][side]["state"].items():
            assert torch.equal(state["exp_avg"], b["optim"][side]["state"][k]["exp_avg"])


class TwoProcesses(SingleProcess):
    """A data-parallel context whose other process's clock says ``theirs``."""

    world = 2

    def __init__(self) -> None:
        self.theirs, self.agreements = False, 0

    def any(self, flag: bool, group=None) -> bool:
        self.agreements += 1
        return flag or self.theirs


def test_processes_agree_on_the_clock_every_few_steps_only(monkeypatch):
    fake, parallel = Clock(), TwoProcesses()
    monkeypatch.setattr(checkpoint_clock, "now", fake)
    timer = CheckpointClock(1, parallel)
    fake.t = 61.0
    assert [step for step in range(1, 2 * CHECK_EVERY + 1) if timer.due(step)] == [CHECK_EVERY, 2 * CHECK_EVERY]
    assert parallel.agreements == 2
    timer.reset()
    parallel.theirs = True  # the other process's clock has run out: this one checkpoints too
    assert timer.due(CHECK_EVERY)
    assert not CheckpointClock(0, parallel).due(CHECK_EVERY) and parallel.agreements == 3  # off: no collective


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_bad_interval_names_its_key(value):
    with pytest.raises(UserError, match=rf"trainer\.checkpoint_minutes={value}\b"):
        check_config(compose_config([*TINY, f"trainer.checkpoint_minutes={value}"]))


def test_a_negative_interval_is_one_line_from_the_cli(tmp_path):
    result = gantrain(*TINY, "trainer.checkpoint_minutes=-1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("gantrain: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "trainer.checkpoint_minutes=-1" in result.stderr
    assert not (tmp_path / "outputs").exists()
