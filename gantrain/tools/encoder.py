"""A learned encoder E(x) -> z that gives inversion its first guess.

Optimisation alone depends on where it starts; Zhu et al. (2016) start it from an
encoder's prediction and refine. E is a small conv net trained on pairs (G(z), z) of
fresh generator samples with an MSE on z, so it needs no data and fits any run. It is
cached per generator (``RUN/invert/encoder_<weights>_step<N>.pt``) because the same G
always gives the same encoder: later calls just load it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.atomic import atomic_write
from gantrain.nets.conditioning import append_as_channels

ENCODER_SEED = 0  # fixed: the cache holds one encoder per generator, whatever --seed says


class Encoder(nn.Module):
    """Three strided convolutions, pooled to 4x4, then a linear map to z. A conditional
    encoder reads the class as extra constant channels, as the conditional D does."""

    def __init__(self, channels: int, z_dim: int, num_classes: int = 0, width: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(channels + num_classes, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # any image size from 16 up
            nn.Linear(4 * width * 16, z_dim),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(append_as_channels(x, y, self.num_classes))


def train_encoder(
    G: nn.Module,
    z_dim: int,
    channels: int,
    num_classes: int,
    steps: int,
    device: torch.device,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> Encoder:
    """``steps`` Adam steps on fresh batches (G(z), z); deterministic."""
    generator = torch.Generator().manual_seed(ENCODER_SEED)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
        torch.manual_seed(ENCODER_SEED)
        E = Encoder(channels, z_dim, num_classes).to(device)
    optimizer = torch.optim.Adam(E.parameters(), lr=lr)
    for _ in range(steps):
        z = torch.randn(batch_size, z_dim, generator=generator).to(device)
        y = torch.randint(num_classes, (batch_size,), generator=generator).to(device) if num_classes else None
        with torch.no_grad():
            x = G(z, y)
        loss = F.mse_loss(E(x, y), z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return E.eval().requires_grad_(False)


def encoder_path(run) -> Path:
    return run.run_dir / "invert" / f"encoder_{run.weights}_step{run.step}.pt"


def _load(path: Path, E: Encoder, steps: int) -> bool:
    """Load a cached encoder into ``E`` when it was trained for as many steps."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("steps") != steps:
            return False
        E.load_state_dict(saved["state_dict"])
    except (OSError, RuntimeError, KeyError, AttributeError, EOFError):
        return False  # unreadable or from an older layout: train a fresh one
    return True


def load_or_train_encoder(run, steps: int, device: torch.device) -> tuple[Encoder, bool]:
    """The run's encoder, and whether it came from the cache. A cached encoder trained
    for another number of steps is replaced (atomically: readers see one or the other)."""
    spec, path = run.spec, encoder_path(run)
    E = Encoder(spec["channels"], run.z_dim, run.num_classes)
    if path.is_file() and _load(path, E, steps):
        return E.to(device).eval().requires_grad_(False), True
    E = train_encoder(run.G, run.z_dim, spec["channels"], run.num_classes, steps, device)
    state = {"state_dict": {k: v.cpu() for k, v in E.state_dict().items()}, "steps": steps}
    atomic_write(path, lambda f: torch.save(state, f))
    return E, False
