"""One writer per run directory (``engine/lock.py``): a second command on a directory a
live process trains is refused in one line and writes nothing; the lock of a process
killed with SIGKILL is stale at once, also while its forked children (data loader
workers) still live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY, gantrain

from gantrain.engine.lock import LOCK_NAME, RunLock, holder
from gantrain.errors import UserError

HOLD = """
import os, sys, time
from gantrain.engine.lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
if len(sys.argv) > 2:  # a forked child that outlives its parent, as a data loader worker may
    child = os.fork()
    if child == 0:
        time.sleep(120)
        os._exit(0)
    print(child, flush=True)
    os.kill(os.getpid(), 9)
print("held", flush=True)
time.sleep(120)
"""


def _hold(run_dir, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), *extra], stdout=subprocess.PIPE, text=True)
    proc.line = proc.stdout.readline().strip()
    return proc


def test_a_held_lock_refuses_a_second_writer_naming_the_holder(tmp_path):
    proc = _hold(tmp_path)
    try:
        assert proc.line == "held"
        record = holder(tmp_path)
        assert record["pid"] == proc.pid and record["host"] and record["started"]
        with pytest.raises(UserError, match=rf"pid {proc.pid} on host .*resume={tmp_path}"):
            RunLock(tmp_path).acquire()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == proc.pid  # the holder's record is kept
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_process_is_taken_over_at_once(tmp_path):
    proc = _hold(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists() and holder(tmp_path) is None  # left behind, and stale
    with RunLock(tmp_path) as lock:
        assert lock.held and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_forked_child_does_not_keep_a_killed_parents_lock(tmp_path):
    proc = _hold(tmp_path, "fork")
    child = int(proc.line)
    proc.wait()
    try:
        assert proc.returncode == -signal.SIGKILL and os.path.exists(f"/proc/{child}")
        with RunLock(tmp_path) as lock:
            assert lock.held
    finally:
        os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_a_second_command_on_a_live_run_is_refused_and_a_killed_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    # speed.compile=false: the long run only keeps it training; auto would compile it first (10000+ steps).
    args = [
        *TINY,
        "trainer.steps=100000",
        "trainer.checkpoint_every=5",
        "trainer.sample_every=1000",
        "speed.compile=false",
    ]
    live = subprocess.Popen(
        [sys.executable, "-m", "gantrain.cli", *args, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.time() + 180
        while not (run_dir / "checkpoints" / "last.pt").exists():
            assert live.poll() is None, live.stderr.read()
            assert time.time() < end, "the live run never wrote a checkpoint"
            time.sleep(0.1)
        hydra_files = sorted(p.name for p in (run_dir / ".hydra").iterdir())
        refused = gantrain(f"resume={run_dir}", cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gantrain: error: "), refused.stderr
        assert f"pid {live.pid}" in lines[0] and f"resume={run_dir}" in lines[0]
        assert live.poll() is None, "the live run was disturbed"
        assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == hydra_files  # nothing written
        assert holder(run_dir)["pid"] == live.pid
    finally:
        live.send_signal(signal.SIGKILL)
        live.communicate(timeout=60)
    assert (run_dir / LOCK_NAME).exists()  # left by the killed run: stale, taken over by the resume
    step = int(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"])
    resumed = gantrain(f"resume={run_dir}", f"trainer.steps={step + 2}", "trainer.progress=false", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert not (run_dir / LOCK_NAME).exists()
