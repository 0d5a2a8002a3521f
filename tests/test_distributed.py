"""Data parallelism on the CPU: two gloo processes started by torchrun keep identical
weights while training on different images; the CLI under torchrun makes one run
directory, logs from rank 0, and resumes exactly; the streams shard every epoch."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import TINY, checkpoint, events

from gantrain.data.memory import TensorStream

HERE = Path(__file__).resolve().parent
TWO = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
NETS = [
    *TINY,
    "trainer.progress=false",
    "trainer.log_every=2",
    "trainer.sample_every=100",
    "trainer.checkpoint_every=100",
]


CLI = str(HERE / "cli_worker.py")  # the gantrain command, reporting the threads it leaves
# What a process aborted by a native thread (std::terminate, SIGABRT) leaves in stderr.
ABORTS = ("terminate called", "Fatal Python error", "SIGABRT")


def assert_no_abort(stderr: str) -> None:
    aborts = [line for line in stderr.splitlines() if any(a in line for a in ABORTS)]
    assert not aborts, stderr[-3000:]


def assert_process_groups_gone(threads_dir: Path, world: int = 2) -> None:
    """Every process of a cli_worker launch said, as it ended, that no thread of a
    process group was left (a group alive at interpreter exit aborts the process)."""
    left = {f.name: f.read_text() for f in sorted(threads_dir.glob("rank*.txt"))}
    assert sorted(left) == [f"rank{r}.txt" for r in range(world)], left
    assert not any(left.values()), left


def launch(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """torchrun with two processes: ``cli_worker.py`` (the gantrain command) when the
    arguments start with CLI, and then each process's leftover threads are checked."""
    threads_dir = Path(tempfile.mkdtemp(dir=cwd, prefix="threads_"))
    done = subprocess.run(
        [*TWO, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "THREADS_DIR": str(threads_dir), **(env or {})},
    )
    assert_no_abort(done.stderr)
    if args and args[0] == CLI:
        assert_process_groups_gone(threads_dir)
    return done


def torchrun(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = launch(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_keep_identical_weights_while_seeing_different_images(tmp_path):
    torchrun(
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
        str(tmp_path / "run"),
        *NETS,
        "trainer.steps=5",
        "loss=wgan_gp",
        "model.discriminator.norm=layer",
        "trainer.d_steps=2",
        "trainer.ema_decay=0.9",
        cwd=tmp_path,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"])  # disjoint shards
    assert ranks[0]["images_seen"] == ranks[1]["images_seen"] == 5 * 2 * 8 * 2  # steps x d_steps x batch x ranks
    for key, value in ranks[0]["final"].items():
        if "running_" in key or "num_batches" in key:
            continue  # BatchNorm statistics are per process; rank 0's are saved
        assert torch.equal(value, ranks[1]["final"][key]), key
    changed = [
        k for k, v in ranks[0]["final"].items() if v.is_floating_point() and not torch.equal(v, ranks[0]["initial"][k])
    ]
    assert any(k.startswith("G.") for k in changed) and any(k.startswith("D.") for k in changed)
    # Rank 0 evaluated (the others waited for it), and only rank 0 wrote.
    reports = sorted(p.name for p in (tmp_path / "run" / "eval").glob("step_*.json"))
    assert reports == [f"step_{k:08d}.json" for k in (2, 4, 5)]
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


@pytest.mark.slow
def test_a_compile_failing_on_one_process_alone_sends_every_process_back_to_eager(tmp_path):
    done = torchrun(
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
        str(tmp_path / "run"),
        *NETS,
        "trainer.steps=3",
        "speed.compile=true",
        cwd=tmp_path,
        env={"FAIL_COMPILE_ON_RANK": "1"},
    )
    warnings = [line for line in done.stderr.splitlines() if "torch.compile failed" in line]
    assert len(warnings) == 2 and sum("no compiler on rank 1" in w for w in warnings) == 1  # one per process
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in ranks[0]["final"].items():
        if "running_" not in key and "num_batches" not in key:
            assert torch.equal(value, ranks[1]["final"][key]), key
    assert checkpoint(tmp_path / "run")["step"] == 3


@pytest.mark.slow
def test_one_process_per_node_decodes_the_data_cache_and_the_others_read_it(tmp_path):
    from fixtures import write_folder

    write_folder(tmp_path / "pets", {"cats": 10, "dogs": 10}, size=(20, 20))
    torchrun(
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
        str(tmp_path / "run"),
        *NETS,
        "trainer.steps=2",
        "data=folder",
        f"data.path={tmp_path / 'pets'}",
        "data.image_size=16",
        "data.cache=true",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.batch_size=4",
        cwd=tmp_path,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["cache_builds"] for r in ranks] == [1, 0]
    assert len(list((tmp_path / "cache").glob("pets_*_images.npy"))) == 1


@pytest.mark.slow
def test_waiting_for_a_node_to_build_its_data_may_outlast_the_collective_timeout(tmp_path):
    """Decoding a large folder into the cache can take longer than a collective may
    wait; the others wait for it on a group of their own with a long timeout."""
    torchrun(
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
        str(tmp_path / "run"),
        *NETS,
        "trainer.steps=2",
        cwd=tmp_path,
        env={"SLOW_DATA_SECONDS": "20", "COLLECTIVE_TIMEOUT_SECONDS": "10"},
    )
    assert checkpoint(tmp_path / "run")["step"] == 2


@pytest.mark.slow
def test_the_cli_under_torchrun_makes_one_run_and_resumes_exactly(tmp_path):
    base = [*NETS, "trainer.checkpoint_every=2"]
    torchrun(CLI, *base, "trainer.steps=6", f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path)
    torchrun(CLI, *base, "trainer.steps=4", f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)
    torchrun(CLI, "trainer.steps=6", f"resume={tmp_path / 'cut'}", cwd=tmp_path)
    straight, resumed = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "cut")
    assert straight["step"] == resumed["step"] == 6 and straight["env"]["processes"] == "2"
    assert len(straight["rng_ranks"]) == 2
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    # Rank 0 alone writes: one event file, one Hydra record, one log file.
    assert len(list((tmp_path / "straight" / "tb").iterdir())) == 1
    assert [p.name for p in (tmp_path / "straight").iterdir() if p.suffix == ".log"] == ["train.log"]
    assert [e.step for e in events(tmp_path / "straight").Scalars("loss/d")] == [2, 4, 6]


@pytest.mark.slow
def test_a_bad_option_under_torchrun_is_one_line_from_rank_0(tmp_path):
    done = launch(CLI, *TINY, "trainer.stepz=3", cwd=tmp_path)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("gantrain: error:")]
    assert errors == [
        "gantrain: error: unknown option trainer.stepz: check the spelling against "
        "`gantrain --cfg job` (or add a new key with +trainer.stepz=...)"
    ]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_an_error_on_a_resumed_run_under_torchrun_is_one_line_per_process(tmp_path):
    torchrun(CLI, *NETS, "trainer.steps=2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    done = launch(CLI, "trainer.steps=2", f"resume={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("gantrain: error:")]
    assert len(errors) == 2 and all("already finished at step 2" in line for line in errors)
    assert "TypeError" not in done.stderr and "exitcode: 2" in done.stderr  # both exit as a user error
    assert checkpoint(tmp_path / "run")["step"] == 2  # the run is as it was


@pytest.mark.slow
def test_the_multi_node_launch_of_the_readme_with_two_nodes_on_one_machine(tmp_path):
    """README's several-machines command: one torchrun per node meeting at a c10d
    rendezvous. Each node's only process is its local rank 0 (a data leader); the
    global rank 0 alone writes the run."""
    import socket

    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=localhost:{port}",
        "--rdzv-id=gantrain-test",
        "--no-python",
        str(Path(sys.executable).parent / "gantrain"),
        *NETS,
        "trainer.steps=4",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    nodes = [
        subprocess.Popen(
            launch,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    for _, stderr in outputs:
        assert_no_abort(stderr)
    state = checkpoint(tmp_path / "run")
    assert state["step"] == 4 and state["env"]["processes"] == "2" and len(state["rng_ranks"]) == 2
    assert [p.name for p in (tmp_path / "run").iterdir() if p.suffix == ".log"] == ["train.log"]


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_slices_of_the_single_process_batches(world):
    images = torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1).expand(30, 1, 2, 2).contiguous()
    single = TensorStream(images, None, 2 * world, seed=4)
    shards = [TensorStream(images, None, 2, seed=4, shard=(rank, world)) for rank in range(world)]
    single_batches = iter(single)
    shard_batches = [iter(s) for s in shards]
    for _ in range(2 * single.batches_per_epoch + 1):  # across epoch boundaries
        whole = next(single_batches)["image"]
        parts = [next(b)["image"] for b in shard_batches]
        assert torch.equal(torch.cat(parts), whole)
    assert {s.epoch for s in shards} == {single.epoch}


@pytest.mark.parametrize("before,after", [(1, 4), (4, 1), (2, 3)])
def test_a_stream_resumes_on_another_process_count_where_it_stopped(before, after):
    """The saved position counts the images of all processes, so a run resumed on more or
    fewer processes goes on from there: no image of the epoch twice, at most one global
    batch skipped, never an index past the epoch."""
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    saved = TensorStream(images, None, 4, seed=4, shard=(0, before))
    batches = iter(saved)
    for _ in range(3):
        next(batches)
    seen = 3 * 4 * before
    resumed = [TensorStream(images, None, 4, seed=4, shard=(rank, after)) for rank in range(after)]
    for stream in resumed:
        stream.load_state_dict(saved.state_dict())
    positions = torch.cat([s.remaining_positions() for s in resumed]).sort().values
    assert positions[0] >= seen and positions[0] - seen < 4 * after
    assert positions.max() < 100 and {s.epoch for s in resumed} == {0}
    assert all(len(next(iter(s))["image"]) == 4 for s in resumed)


def test_a_stream_resumed_past_its_epoch_goes_on_with_the_next():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    saved = TensorStream(images, None, 4, seed=4)
    batches = iter(saved)
    for _ in range(24):  # 96 of 100 images: one more batch of 4 x 4 processes would not fit
        next(batches)
    resumed = TensorStream(images, None, 4, seed=4, shard=(0, 4))
    resumed.load_state_dict(saved.state_dict())
    next(iter(resumed))
    assert resumed.epoch == 1 and resumed.batch == 1


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_process_at_one_step_with_a_checkpoint(tmp_path):
    """What a cluster does before pre-empting a job: SIGTERM to the launcher, which
    passes it on. Every process stops at the same step (they agree on it), rank 0
    writes the checkpoint with both RNG states, and the run resumes."""
    import signal
    import time

    run = tmp_path / "run"
    launcher = subprocess.Popen(
        # speed.compile=false: the long run only keeps it training; auto would compile it first (10000+ steps).
        [*TWO, CLI, *NETS, "trainer.steps=1000000", "trainer.checkpoint_every=1000000", "speed.compile=false"]
        + [f"hydra.run.dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "THREADS_DIR": str(tmp_path / "threads")},
    )
    deadline = time.time() + 120
    # health.json is first written at the first log point: the processes have trained steps
    # (waiting a few seconds after start-up raced a slow start-up on a busy machine).
    while not (run / "health.json").is_file() and time.time() < deadline:
        time.sleep(0.5)
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    assert f"gantrain: interrupted; continue with: gantrain resume={run}" in stderr
    assert_no_abort(stderr)
    assert_process_groups_gone(tmp_path / "threads")  # a stop request is a way out too
    state = checkpoint(run)
    assert state["step"] > 0 and len(state["rng_ranks"]) == 2
    torchrun(CLI, f"trainer.steps={state['step'] + 2}", f"resume={run}", cwd=tmp_path)
    assert checkpoint(run)["step"] == state["step"] + 2


def test_a_numbered_gpu_under_torchrun_is_refused_before_anything_runs():
    from gantrain.engine.runtime import select_device
    from gantrain.errors import UserError

    with pytest.raises(UserError, match=r"device=cuda:0 under torchrun would put every process on one GPU"):
        select_device("cuda:0", local_rank=1)
    assert select_device("cpu", local_rank=1) == torch.device("cpu")
