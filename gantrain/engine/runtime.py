"""Process-wide settings live here and nowhere else: seeds, device, backend flags,
RNG capture for checkpoints, and the environment a run records about itself."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from gantrain.errors import UserError


def select_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU. Under torchrun
    (``local_rank`` given) ``auto`` and ``cuda`` mean this process's own GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is not None and local_rank is not None:
        raise UserError(
            f"device={name} under torchrun would put every process on one GPU: use device=cuda "
            f"(or auto), and each process takes the GPU of its local rank (CUDA_VISIBLE_DEVICES "
            f"chooses which GPUs)"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} was asked for but no CUDA GPU is visible: use device=cpu or auto")
    if device.type == "cuda" and local_rank is not None and device.index is None:
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"process {local_rank} of this node has no GPU of its own ({torch.cuda.device_count()} "
                f"visible): start at most that many with torchrun --nproc-per-node"
            )
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        if device.index is None:  # set_device wants an index: "cuda" alone is a ValueError
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def share_machine(job_num: int, parallel_jobs: int) -> str | None:
    """For one of ``parallel_jobs`` sweep jobs running side by side on this machine: the
    CPU threads split evenly (each job taking all cores would slow every one of them),
    and with several GPUs, GPU ``job_num`` modulo their count. Returns that device, or
    None to keep ``device=auto``'s choice."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, parallel_jobs)))
    gpus = torch.cuda.device_count()
    return f"cuda:{job_num % gpus}" if gpus > 1 else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng() -> dict:
    """RNG states as tensors and plain Python values, so ``weights_only`` loading works."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def git_revision() -> str:
    """The revision of the repository gantrain runs from, when it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown (not a git checkout)"


def environment(device: torch.device) -> dict[str, str]:
    from gantrain import __version__

    info = {
        "gantrain": __version__,
        "git revision": git_revision(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "device": str(device),
        "host": platform.node(),
    }
    if device.type == "cuda":
        info["device name"] = torch.cuda.get_device_name(device)
        info["cudnn"] = str(torch.backends.cudnn.version())
    else:
        info["device name"] = platform.processor() or platform.machine()
        info["cpu threads"] = str(torch.get_num_threads())
    return {key: str(value) for key, value in info.items()}  # plain str: weights_only loads it
