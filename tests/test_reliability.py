"""Crashes and pre-emption: a training process killed with SIGKILL at random moments
always leaves a whole checkpoint that resume continues from, losing at most one
checkpoint interval; SIGTERM writes a checkpoint and exits without a traceback."""

import random
import re
import signal
import subprocess
import sys
import time

import torch
from conftest import TINY

from gantrain.engine.checkpoint import load_checkpoint

INTERVAL = 5
ARGS = [
    *TINY,
    "trainer.steps=100000",
    f"trainer.checkpoint_every={INTERVAL}",
    f"trainer.log_every={INTERVAL}",
    "trainer.sample_every=1000",
    "trainer.progress=true",
]


def _start(tmp_path, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gantrain.cli", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, proc, deadline=180):
    end = time.time() + deadline
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


def _steps_shown(stderr: str) -> int:
    """The last step count tqdm printed (it lags the true count a little, never leads)."""
    counts = re.findall(r"(\d+)/100000 \[", stderr)
    return int(counts[-1]) if counts else 0


def test_sigkill_at_random_moments_never_corrupts_a_checkpoint(tmp_path):
    rng = random.Random(7)
    run_dir = tmp_path / "run"
    last, generator = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "generator.pt"
    previous = 0
    for kill in range(6):
        args = [*ARGS, f"hydra.run.dir={run_dir}"] if kill == 0 else [f"resume={run_dir}"]
        proc = _start(tmp_path, *args)
        if kill == 0:
            _wait_for(last, proc)
        else:  # wait until this process has trained, then kill it at a random moment
            time.sleep(4.0)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        state = load_checkpoint(last)  # whole, readable, with weights_only=True
        load_checkpoint(generator)
        step = state["step"]
        assert step % INTERVAL == 0 and step >= previous, (step, previous)
        assert _steps_shown(stderr) - step <= INTERVAL, "more than one checkpoint interval was lost"
        previous = step
    done = subprocess.run(
        [sys.executable, "-m", "gantrain.cli", f"resume={run_dir}", f"trainer.steps={previous + INTERVAL}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(last)["step"] == previous + INTERVAL
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a killed write's temporary was left behind"
    assert previous > 0


def test_sigterm_checkpoints_and_exits_cleanly_then_resume_continues(tmp_path):
    run_dir = tmp_path / "run"
    args = [a for a in ARGS if not a.startswith("trainer.checkpoint_every")]
    proc = _start(tmp_path, *args, "trainer.checkpoint_every=100000", f"hydra.run.dir={run_dir}")
    _wait_for(run_dir / "tb", proc)
    time.sleep(4.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert f"gantrain resume={run_dir}" in stderr
    step = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert step > 0  # the checkpoint was written on the way out, not at an interval
    more = subprocess.run(
        [sys.executable, "-m", "gantrain.cli", f"resume={run_dir}", f"trainer.steps={step + 1}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert more.returncode == 0, more.stderr
    again = subprocess.run(
        [sys.executable, "-m", "gantrain.cli", f"resume={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 2 and "already finished" in again.stderr
