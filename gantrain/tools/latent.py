"""Latent vectors: interpolation paths, saved vectors, and frames as a GIF.

Slerp (spherical interpolation, Shoemake 1985) is the default for walks because a z
drawn from N(0, I) in d dimensions has norm close to sqrt(d): a straight line between
two such vectors passes through shorter, improbable ones near its middle (White,
"Sampling Generative Networks", 2016), while slerp keeps the norm on the way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gantrain.atomic import atomic_write
from gantrain.errors import UserError

METHODS = ("slerp", "lerp")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points ``a + t (b - a)`` for each t: (T, D) from two (D,) vectors."""
    return a + t[:, None] * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Along the great circle from a to b (norms interpolated linearly), for each t."""
    a_norm, b_norm = a.norm(), b.norm()
    if a_norm == 0 or b_norm == 0:
        return lerp(a, b, t)
    cos = torch.clamp(torch.dot(a / a_norm, b / b_norm), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:  # (nearly) the same direction: the arc is the straight line
        return lerp(a, b, t)
    w_a = torch.sin((1 - t) * omega) / torch.sin(omega)
    w_b = torch.sin(t * omega) / torch.sin(omega)
    directions = w_a[:, None] * (a / a_norm) + w_b[:, None] * (b / b_norm)
    # The arc of unit vectors, rescaled to norms that go linearly from |a| to |b|.
    norms = a_norm + t * (b_norm - a_norm)
    return directions / directions.norm(dim=1, keepdim=True) * norms[:, None]


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """``steps`` points from a to b, both ends included."""
    if method not in METHODS:
        raise UserError(f"--method {method}: use one of {', '.join(METHODS)}")
    t = torch.linspace(0, 1, steps, dtype=a.dtype)
    return (slerp if method == "slerp" else lerp)(a, b, t)


def segments(points: torch.Tensor, steps: int, method: str, loop: bool = False) -> list[torch.Tensor]:
    """One interpolation per consecutive pair of ``points`` (and back to the first with ``loop``)."""
    if len(points) < 2:
        raise UserError("a walk needs at least two end points: give two or more seeds or vectors")
    if steps < 2:
        raise UserError(f"--steps {steps}: a walk needs at least 2 steps (its two ends)")
    ends = torch.cat([points, points[:1]]) if loop else points
    return [interpolate(ends[k], ends[k + 1], steps, method) for k in range(len(ends) - 1)]


def join(parts: list[torch.Tensor]) -> torch.Tensor:
    """Segments end to end, each joint once: the frames of one continuous walk."""
    return torch.cat([parts[0]] + [part[1:] for part in parts[1:]])


def load_vectors(path: str | Path, z_dim: int, index: list[int] | None = None) -> torch.Tensor:
    """Latent vectors saved by gantrain-invert (``z.pt``, a dict with ``z``) or by the user (a
    tensor of shape (N, z_dim)), read with ``weights_only=True``; rows ``index`` or all."""
    path = Path(path).expanduser()
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file of latent vectors") from None
    except Exception as exc:
        raise UserError(
            f"cannot read latent vectors from {path} ({str(exc).splitlines()[0]}): save a "
            f"tensor of shape (N, {z_dim}) with torch.save, or use gantrain-invert's z.pt"
        ) from None
    z = saved.get("z") if isinstance(saved, dict) else saved
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != z_dim:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise UserError(f"{path} holds {shape}, not latent vectors of shape (N, {z_dim}) for this generator")
    if index is None:
        return z.float()
    bad = [k for k in index if not 0 <= k < len(z)]
    if bad:
        raise UserError(f"--index {bad[0]} is out of range: {path} holds {len(z)} vectors (0..{len(z) - 1})")
    return z[index].float()


def save_gif(frames: list[torch.Tensor], path: Path, fps: float, nrow: int) -> None:
    """Frames (each a batch of images in [-1, 1]) as one animated GIF that loops forever."""
    from torchvision.transforms.functional import to_pil_image  # here: see run.ToolOutput.grid
    from torchvision.utils import make_grid

    pictures = [
        to_pil_image(make_grid(frame.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))) for frame in frames
    ]
    duration = max(1, round(1000 / fps))
    # Atomically, like everything a run's folders hold: a kill leaves no half a GIF.
    atomic_write(
        path,
        lambda f: pictures[0].save(
            f, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0
        ),
    )
