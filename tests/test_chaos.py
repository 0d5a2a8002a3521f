"""Chaos: one run killed with SIGKILL again and again, at moments aimed at start-up, at a
checkpoint write, at a sample grid and at an evaluation, resumed after every kill. After
each kill what the run directory holds is whole (the checkpoints load, every report
parses, every grid decodes) and the checkpoint's step never goes back; at the end the
weights, optimizer moments and data position equal those of a run never interrupted,
since resume is exact (``tests/test_train.py``'s one-long-run test, here across eleven
deaths).

A kill at a uniformly random time rarely lands inside a write of a few milliseconds.
Without hooks in the product, the moments are made likely two ways: settings that make
those phases a large share of each step (a checkpoint and a grid every step, an
evaluation every few, tiny nets), and kills timed on what the test sees on disk: a
temporary ``.last.pt.*.tmp`` appearing (a checkpoint being written), a new entry in
``samples/`` (a grid being written), a new grid of an evaluation step (its evaluation
comes next). The kill schedule is seeded; where each kill lands still depends on the
machine's speed, so every assertion holds whatever the moment, and which phases were
hit is printed (``pytest -s``), not asserted.

About 50 seconds on 2 CPU cores, most of it the start-up of a dozen processes.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from chaos_kill import Trainee, steps_shown
from conftest import TINY, train
from fixtures import write_mnist
from PIL import Image

from gantrain.engine.checkpoint import load_checkpoint

# Every test here is `slow` (pyproject.toml): the contributor's fast loop skips them, CI runs them.
pytestmark = pytest.mark.slow

STEPS = 24
EVAL_EVERY = 4
# One thread in every process, the reference run included: the result of a float
# reduction depends on the thread count, and on a shared runner one thread per process
# avoids OpenMP's spinning threads fighting over the cores.
THREADS = {"OMP_NUM_THREADS": "1"}
# The first kill is at start-up (the first process), then these, in a seeded order.
PLAN = [
    "start-up",
    "start-up",
    "checkpoint",
    "checkpoint",
    "checkpoint",
    "sample",
    "sample",
    "evaluation",
    "evaluation",
]
PLAN += ["anywhere"]


def overrides(tmp_path: Path) -> list[str]:
    """Tiny nets, a checkpoint and a sample grid every step, an evaluation every
    EVAL_EVERY steps by the cheapest judge: a classifier trained once (cached) on 60
    written MNIST digits (``tests/test_eval.py``)."""
    if not (tmp_path / "data").exists():
        write_mnist(tmp_path / "data", n_train=60)
    return [
        *TINY,
        "data=mnist",
        f"data.root={tmp_path / 'data'}",
        "data.download=false",
        f"trainer.steps={STEPS}",
        "trainer.checkpoint_every=1",
        "trainer.sample_every=1",
        "trainer.log_every=1",
        "trainer.progress=true",
        "trainer.ema_decay=0.9",  # the EMA's weights are state to get back too
        f"eval.every={EVAL_EVERY}",
        "eval.num_samples=20",
        f"eval.cache_dir={tmp_path / 'cache'}",
    ]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _names(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in folder.iterdir()}
    except FileNotFoundError:
        return set()


def _poll(proc: Trainee, seen, deadline: float = 120, every: float = 0.001) -> bool:
    """Until ``seen()`` is true (True) or the process exits (False)."""
    end = time.time() + deadline
    while proc.alive():
        if seen():
            return True
        assert time.time() < end, f"nothing to kill at after {deadline}s:\n{proc.stderr}"
        time.sleep(every)
    return False


def _grid_step(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def kill_at(proc: Trainee, aim: str, run_dir: Path, rng: random.Random, startup: float) -> None:
    """SIGKILL ``proc`` at a moment aimed at ``aim``; nothing when it exits first."""
    last, samples = run_dir / "checkpoints" / "last.pt", run_dir / "samples"
    if aim == "start-up":
        time.sleep(rng.uniform(0.0, startup))
        proc.kill()
        return
    # First past start-up: this process has written a checkpoint of its own.
    if not _poll(proc, lambda: _mtime(last) > proc.started, every=0.01):
        return
    if aim == "checkpoint":  # a write's temporary, .last.pt.XXXX.tmp or .generator.pt.XXXX.tmp
        _poll(proc, lambda: any(name.endswith(".tmp") for name in _names(last.parent)))
    elif aim == "sample":  # the next grid: its temporary, or the grid itself being written
        before = _names(samples)
        _poll(proc, lambda: bool(_names(samples) - before))
    elif aim == "evaluation":  # a new grid of an evaluation step: the evaluation follows it
        since = _mtime(last)

        def evaluation_next() -> bool:
            grids = [p for p in samples.glob("samples_*.png") if _grid_step(p) % EVAL_EVERY == 0]
            return any(_mtime(p) > since for p in grids)

        _poll(proc, evaluation_next, every=0.002)  # at once: an evaluation of a tiny run is over in milliseconds
    else:
        time.sleep(rng.uniform(0.0, 1.0))
    proc.kill()


def phase_hit(run_dir: Path, began: float, step: int | None) -> str:
    """Where a kill landed, read from what the process left (before resume tidies up)."""
    temporaries = {
        folder: [p for p in (run_dir / folder).glob(".*.tmp")] for folder in ("checkpoints", "samples", "eval")
    }
    if temporaries["checkpoints"]:
        return "checkpoint write"
    if temporaries["samples"]:
        return "sample grid"
    if temporaries["eval"]:
        return "evaluation"
    grids = [_grid_step(p) for p in (run_dir / "samples").glob("samples_*.png") if _mtime(p) > began]
    if step is None or (_mtime(run_dir / "checkpoints" / "last.pt") <= began and not grids):
        return "start-up"
    newest = max(grids, default=step)
    if newest > step:  # the grid of step N+1 is out, its checkpoint is not
        report = run_dir / "eval" / f"step_{newest:08d}.json"
        if newest % EVAL_EVERY == 0 and _mtime(report) <= began:
            return "evaluation"
        return "checkpoint write"
    return "training step"  # the update, or the grid being drawn


def check_whole(run_dir: Path) -> int | None:
    """Everything the run left reads back whole; the checkpoint's step (None: none yet)."""
    for report in (run_dir / "eval").glob("[!.]*.json"):
        try:
            json.loads(report.read_text())
        except ValueError as exc:
            pytest.fail(f"a half-written evaluation report is taken for one: {report} ({exc})")
    for grid in (run_dir / "samples").glob("[!.]*.png"):
        try:
            with Image.open(grid) as image:
                image.load()
        except (OSError, SyntaxError) as exc:  # PIL's errors for a truncated or empty file
            pytest.fail(f"a half-written sample grid is taken for one: {grid} ({exc})")
    for name in ("best.pt", "generator.pt"):
        if (run_dir / "checkpoints" / name).exists():
            load_checkpoint(run_dir / "checkpoints" / name)
    last = run_dir / "checkpoints" / "last.pt"
    return int(load_checkpoint(last)["step"]) if last.exists() else None


def assert_same_training_state(a: dict, b: dict) -> None:
    """Weights (the EMA's too), optimizer moments, data position and the best evaluation:
    what exact resume promises."""
    assert (a["step"], a["images_seen"]) == (b["step"], b["images_seen"])
    for weights in ("model", "ema"):
        assert a[weights].keys() == b[weights].keys()
        for key, value in a[weights].items():
            if isinstance(value, dict):  # the EMA's module
                assert value.keys() == b[weights][key].keys()
                for name, tensor in value.items():
                    assert torch.equal(tensor, b[weights][key][name]), (weights, key, name)
            else:
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b[weights][key])), (weights, key)
    for side in ("g", "d"):
        assert a["optim"][side]["state"].keys() == b["optim"][side]["state"].keys()
        for index, state in a["optim"][side]["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optim"][side]["state"][index][name])), (
                    side,
                    index,
                    name,
                )
    assert a["stream"] == b["stream"]
    assert a["best"] == b["best"]  # checkpoints/best.pt: the same evaluation picked it


def test_killed_at_every_phase_and_resumed_ends_where_an_uninterrupted_run_ends(tmp_path):
    args = overrides(tmp_path)
    # The uninterrupted run, in this process with the subprocesses' one thread; it also
    # trains the evaluation's judge into the cache that the killed processes load it from.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train(tmp_path / "straight", args) == "finished"
    finally:
        torch.set_num_threads(threads)

    rng = random.Random(22)
    plan = ["start-up", *rng.sample(PLAN, len(PLAN))]
    run_dir = tmp_path / "run"
    hits: Counter[str] = Counter()
    story = []  # (aimed at, landed in, checkpoint step) of every kill
    previous, startup = -1, 2.0  # startup: seconds to the first checkpoint, measured below
    for number, aim in enumerate(plan):
        # Once the run has begun (Hydra recorded its command), resume= continues it: from
        # its checkpoint, or from step 0 when it was killed before the first one. A kill in
        # the instant before that record leaves a directory with nothing of the run in it.
        resuming = (run_dir / ".hydra" / "overrides.yaml").exists()
        if not resuming:
            shutil.rmtree(run_dir, ignore_errors=True)
        command = [f"resume={run_dir}"] if resuming else [*args, f"hydra.run.dir={run_dir}"]
        proc = Trainee(tmp_path, command, tmp_path / f"stderr_{number}.txt", env=THREADS)
        kill_at(proc, aim, run_dir, rng, startup)
        stderr = proc.kill()
        if proc.returncode == 0:  # it reached the last step before the kill
            break
        assert proc.returncode == -signal.SIGKILL, stderr
        step = check_whole(run_dir)
        hit = phase_hit(run_dir, proc.started, step)
        hits[hit] += 1
        story.append((aim, hit, step))
        if step is None:  # killed before its first checkpoint: the next resume= starts it over
            assert previous == -1
            continue
        assert step >= previous, (step, previous)
        assert steps_shown(stderr) - step <= 1, "more than one step was lost with a checkpoint every step"
        if aim != "start-up" and previous == -1:
            startup = max(_mtime(run_dir / "checkpoints" / "last.pt") - proc.started, 0.5)
        previous = step
    print(f"\nchaos: {sum(hits.values())} kills landed in: {dict(hits)}")
    print("\n".join(f"  aimed at {aim}, landed in {hit}, checkpoint step {step}" for aim, hit, step in story))

    if (run_dir / "checkpoints" / "last.pt").exists() and check_whole(run_dir) < STEPS:
        done = Trainee(tmp_path, [f"resume={run_dir}"], tmp_path / "stderr_end.txt", env=THREADS)
        assert done.proc.wait(timeout=300) == 0, done.stderr
    assert check_whole(run_dir) == STEPS
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a killed write's temporary was left behind"
    assert previous >= 0, "no kill landed after a checkpoint"
    assert_same_training_state(
        load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt"),
        load_checkpoint(run_dir / "checkpoints" / "last.pt"),
    )


def test_a_run_killed_at_start_up_can_be_continued(tmp_path):
    args = [*TINY, "trainer.steps=2"]
    run_dir = tmp_path / "run"
    proc = Trainee(tmp_path, [*args, f"hydra.run.dir={run_dir}"], tmp_path / "stderr.txt", env=THREADS)
    # Hydra recorded the command: the run began (and has no checkpoint yet).
    _poll(proc, lambda: (run_dir / ".hydra" / "overrides.yaml").exists(), every=0.005)
    proc.kill()
    assert proc.returncode == -signal.SIGKILL and not (run_dir / "checkpoints" / "last.pt").exists()
    resume = Trainee(tmp_path, [f"resume={run_dir}"], tmp_path / "resume.txt")
    assert resume.proc.wait(timeout=300) == 0, resume.stderr
    assert "has no checkpoint yet: starting that run over from step 0" in resume.stderr
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2


def _as_killed_while_hydra_recorded(run_dir: Path, *emptied: str) -> None:
    """Leave ``run_dir`` as a kill in Hydra's recording leaves it: only ``.hydra``, with the
    named files created but not yet written (Hydra opens each, then writes it in one go)."""
    for entry in run_dir.iterdir():
        if entry.name != ".hydra":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for name in emptied:
        (run_dir / ".hydra" / name).write_text("")


def test_a_run_killed_while_hydra_wrote_its_overrides_continues_with_its_own_command(tmp_path):
    # An empty overrides.yaml once read as "no overrides": the resume trained the default
    # config, 3000 steps of full-width nets, instead of the run that was killed (CI, stop 27).
    run_dir = tmp_path / "run"
    first = Trainee(
        tmp_path, [*TINY, "trainer.steps=2", f"hydra.run.dir={run_dir}"], tmp_path / "first.txt", env=THREADS
    )
    assert first.proc.wait(timeout=300) == 0, first.stderr
    _as_killed_while_hydra_recorded(run_dir, "overrides.yaml")
    resume = Trainee(tmp_path, [f"resume={run_dir}"], tmp_path / "resume.txt", env=THREADS)
    assert resume.proc.wait(timeout=300) == 0, resume.stderr
    assert "has no checkpoint yet: starting that run over from step 0" in resume.stderr
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 2 and "model.generator.width=8" in state["overrides"]


def test_a_run_killed_before_hydra_recorded_its_command_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    first = Trainee(
        tmp_path, [*TINY, "trainer.steps=1", f"hydra.run.dir={run_dir}"], tmp_path / "first.txt", env=THREADS
    )
    assert first.proc.wait(timeout=300) == 0, first.stderr
    _as_killed_while_hydra_recorded(run_dir, "hydra.yaml", "overrides.yaml")
    resume = Trainee(tmp_path, [f"resume={run_dir}"], tmp_path / "resume.txt", env=THREADS)
    assert resume.proc.wait(timeout=300) == 2
    lines = resume.stderr.strip().splitlines()
    assert len(lines) == 1 and "start the run again with its command" in lines[0], resume.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra"], "the refused resume wrote into the run"
