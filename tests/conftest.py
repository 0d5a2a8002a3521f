"""Shared helpers: compose configs the way the CLI does, train in-process, read
TensorBoard events back with TensorBoard's own reader, and run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from gantrain.build import run
from gantrain.cli import CONF_DIR

# Tiny nets and few steps: every run in the suite takes a second or two on 2 CPU cores.
TINY = ["model.generator.width=8", "model.discriminator.width=8", "data.batch_size=8",
        "trainer=smoke", "device=cpu"]
TINY_MLP = ["model=gan", "model.generator.hidden=16", "model.discriminator.hidden=16",
            "data.batch_size=8", "trainer=smoke", "device=cpu"]


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="train"):
        return compose("train", overrides=overrides)


def train(run_dir: Path, overrides: list[str]) -> str:
    """Train in this process exactly as the CLI's task function does."""
    return run(compose_config(overrides), run_dir, overrides)


def events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def gantrain(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real ``gantrain`` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "gantrain.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
