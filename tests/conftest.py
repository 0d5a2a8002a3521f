"""Shared helpers: compose configs the way the CLI does, train in-process, read
TensorBoard events back with TensorBoard's own reader, and run the real CLI; and the
device of the tests marked ``device``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from gantrain.build import run
from gantrain.config import compose_config  # noqa: F401  (the tests import it from here)

# Tiny nets and few steps: every run in the suite takes a second or two on 2 CPU cores.
TINY = ["model.generator.width=8", "model.discriminator.width=8", "data.batch_size=8", "trainer=smoke", "device=cpu"]
TINY_MLP = [
    "model=gan",
    "model.generator.hidden=16",
    "model.discriminator.hidden=16",
    "data.batch_size=8",
    "trainer=smoke",
    "device=cpu",
]

# Tests marked `device` (pyproject.toml) train on this device: the CPU, as CI runs them,
# or the GPU when scripts/gpu_check.sh runs `GANTRAIN_TEST_DEVICE=cuda pytest -m device`.
TEST_DEVICE = os.environ.get("GANTRAIN_TEST_DEVICE", "cpu")


def on_device(overrides: list[str], device: str) -> list[str]:
    """``overrides`` training on ``device``: their ``device=cpu`` becomes ``device=<device>``
    (the CPU: unchanged). Off the CPU also ``speed.compile=false`` unless they choose:
    compiling each of these tiny runs would take the GPU check's minutes, and its own
    training runs compile, with the default fast path."""
    if device == "cpu":
        return list(overrides)
    moved = [f"device={device}" if o == "device=cpu" else o for o in overrides]
    if not any(o.startswith("device=") for o in moved):
        moved.append(f"device={device}")
    if not any(o.startswith("speed.compile=") for o in moved):
        moved.append("speed.compile=false")
    return moved


def train(run_dir: Path, overrides: list[str]) -> str:
    """Train in this process exactly as the CLI's task function does."""
    return run(compose_config(overrides), run_dir, overrides)


def train_pix2pix(run_dir: Path, data_root: Path, *extra: str) -> None:
    """A tiny pix2pix run on written facades pairs: a translator for the tools' tests."""
    from fixtures import write_paired

    write_paired(data_root / "facades", {"train": 4, "val": 2}, size=(64, 32))
    nets = ["model.generator.width=8", "model.discriminator.width=8", "data.image_size=32", "data.load_size=32"]
    train(
        run_dir,
        [
            "model=pix2pix",
            "data=facades",
            f"data.root={data_root}",
            *nets,
            "data.num_workers=0",
            "trainer=smoke",
            "device=cpu",
            *extra,
        ],
    )


def events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def checkpoint(run_dir: Path) -> dict:
    """The run's last checkpoint, on the CPU (also from a run on the GPU)."""
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


class Forker:
    """One ``cli_forker.py`` server for the whole test run, started at its first use: each
    command it runs is a process of its own, forked from one that has imported gantrain
    already, so a command that a config check refuses costs a fraction of a second instead
    of the seconds its imports take. Stopped at the end of the session (``pytest_sessionfinish``)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.logs = Path(tempfile.mkdtemp(prefix="gantrain-forker-"))
        self.count = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "cli_forker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=self.logs,
            # NumPy's OpenBLAS would start its thread pool at import; one thread starts none,
            # and the server must have no thread when it forks. torch's own pools are unaffected.
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        )
        ready = self.process.stdout.readline()
        if json.loads(ready or "{}").get("ready") is not True:
            raise RuntimeError(f"cli_forker.py did not start (exit {self.process.wait()})")

    def run(
        self, module: str, args: list[str], cwd: Path, timeout: float, env: dict | None
    ) -> subprocess.CompletedProcess:
        if self.process is None or self.process.poll() is not None:
            self.start()
        self.count += 1
        out, err = self.logs / f"{self.count}.out", self.logs / f"{self.count}.err"
        request = {"module": module, "args": list(args), "cwd": str(cwd), "env": env or {}}
        request.update({"out": str(out), "err": str(err), "timeout": timeout})
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        rc = json.loads(self.process.stdout.readline())["rc"]
        if rc == -9:
            raise subprocess.TimeoutExpired([module, *args], timeout)
        result = subprocess.CompletedProcess([module, *args], rc, out.read_text(), err.read_text())
        out.unlink()
        err.unlink()
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        shutil.rmtree(self.logs, ignore_errors=True)


FORKER = Forker()


def pytest_sessionfinish(session, exitstatus) -> None:
    FORKER.stop()


def command(
    module: str, *args: str, cwd: Path, timeout: float = 300, env: dict | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """A gantrain command (``module``'s ``main``, as its console script runs it) with
    ``args`` in ``cwd``: its exit status, stdout and stderr. It runs in a process of its
    own, forked from the ``FORKER`` server; ``fresh=True``: in a new interpreter
    (``python -m module``), for tests whose point is the start of the process."""
    if not fresh:
        return FORKER.run(module, [str(a) for a in args], cwd, timeout, env)
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def gantrain(
    *args: str, cwd: Path, timeout: float = 300, env: dict | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """The real ``gantrain`` command, as a user runs it (``command``)."""
    return command("gantrain.cli", *args, cwd=cwd, timeout=timeout, env=env, fresh=fresh)


@pytest.fixture
def device(request) -> str:
    """The device a test marked ``device`` trains on (pass its overrides through ``on_device``)."""
    if request.node.get_closest_marker("device") is None:
        pytest.fail("a test that takes the `device` fixture needs @pytest.mark.device")
    if TEST_DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail(f"GANTRAIN_TEST_DEVICE={TEST_DEVICE}, but no CUDA GPU is visible")
    return TEST_DEVICE


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch.hub cache under tmp_path and no network: returns the cache's checkpoints dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a torch.hub.set_dir() elsewhere must not leak in

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A weights file with exactly the keys and shapes torch-fidelity loads, random values."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with pytest.MonkeyPatch.context() as patch, torch.random.fork_rng(devices=[]):
        # Build torch-fidelity's own module without fetching or loading any weights.
        patch.setattr(tfi, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *args, **kwargs: None)
        torch.manual_seed(0)
        model = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        for module in model.modules():  # PyTorch's default init makes features vanish over ~90 layers
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def quick_judge(monkeypatch) -> None:
    """The real judge path (``load_or_train_judge``, its cache) with a cheaper fit: a tenth
    of the images, one epoch. The full recipe on the bundled MNIST sample takes over a
    minute on two CPU cores; tests that need a judge, not a good one, take this."""
    from gantrain.metrics import classifier

    fit = classifier.fit_classifier

    def quick_fit(images, labels, num_classes, **kwargs):
        return fit(
            images[::10], labels[::10], num_classes, epochs=1, seed=kwargs.get("seed", 0), device=kwargs.get("device")
        )

    monkeypatch.setattr(classifier, "fit_classifier", quick_fit)


@pytest.fixture(scope="session")
def dcgan_run(tmp_path_factory) -> Path:
    """A tiny DCGAN trained for a few steps on the bundled MNIST sample (shared: tools
    write into their own subfolders, never over each other)."""
    run_dir = tmp_path_factory.mktemp("dcgan") / "run"
    train(run_dir, [*TINY, "trainer.steps=4"])
    return run_dir


@pytest.fixture(scope="session")
def cgan_run(tmp_path_factory) -> Path:
    """The same, conditional on the digit class, with an EMA of G."""
    run_dir = tmp_path_factory.mktemp("cgan") / "run"
    train(run_dir, [*TINY, "trainer.steps=4", "model.conditional=true", "trainer.ema_decay=0.9"])
    return run_dir
