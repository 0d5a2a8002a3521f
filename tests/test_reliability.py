"""Crashes and pre-emption: a training process killed with SIGKILL at random moments
always leaves a whole checkpoint that resume continues from, losing at most one
checkpoint interval; SIGTERM writes a checkpoint and exits without a traceback."""

import random
import signal
import time

import pytest
import torch
from chaos_kill import Trainee, steps_shown
from conftest import TINY, gantrain

from gantrain.engine.checkpoint import load_checkpoint

# Every test here is `slow` (pyproject.toml): the contributor's fast loop skips them, CI runs them.
pytestmark = pytest.mark.slow

INTERVAL = 5
ARGS = [
    *TINY,
    "trainer.steps=100000",
    "speed.compile=false",  # the long run only keeps it training; auto would compile it first (10000+ steps)
    f"trainer.checkpoint_every={INTERVAL}",
    f"trainer.log_every={INTERVAL}",
    "trainer.sample_every=1000",
    "trainer.progress=true",
]


def test_sigkill_at_random_moments_never_corrupts_a_checkpoint(tmp_path):
    rng = random.Random(7)
    run_dir = tmp_path / "run"
    last, generator = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "generator.pt"
    previous = 0
    for kill in range(6):
        args = [*ARGS, f"hydra.run.dir={run_dir}"] if kill == 0 else [f"resume={run_dir}"]
        proc = Trainee(tmp_path, args, tmp_path / f"stderr_{kill}.txt")
        if kill == 0:
            proc.wait_for(last)
        else:  # wait until this process has trained, then kill it at a random moment
            time.sleep(4.0)
        time.sleep(rng.uniform(0.0, 1.5))
        stderr = proc.kill()
        assert proc.returncode == -signal.SIGKILL
        state = load_checkpoint(last)  # whole, readable, with weights_only=True
        load_checkpoint(generator)
        step = state["step"]
        assert step % INTERVAL == 0 and step >= previous, (step, previous)
        assert steps_shown(stderr) - step <= INTERVAL, "more than one checkpoint interval was lost"
        previous = step
    done = gantrain(f"resume={run_dir}", f"trainer.steps={previous + INTERVAL}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(last)["step"] == previous + INTERVAL
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a killed write's temporary was left behind"
    assert previous > 0


def test_sigterm_checkpoints_and_exits_cleanly_then_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    args = [a for a in ARGS if not a.startswith("trainer.checkpoint_every")]
    args = [*args, "trainer.checkpoint_every=100000", f"hydra.run.dir={run_dir}"]
    proc = Trainee(tmp_path, args, tmp_path / "stderr.txt")
    proc.wait_for(run_dir / "tb")
    time.sleep(4.0)
    stderr = proc.signal(signal.SIGTERM)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert f"gantrain resume={run_dir}" in stderr
    step = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert step > 0  # the checkpoint was written on the way out, not at an interval
    more = gantrain(f"resume={run_dir}", f"trainer.steps={step + 1}", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    again = gantrain(f"resume={run_dir}", cwd=tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr
