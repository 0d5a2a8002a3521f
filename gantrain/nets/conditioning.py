"""Class conditioning shared by the conditional nets (Mirza & Osindero, 2014).

G sees ``[z, onehot(y)]``; D sees the image with ``onehot(y)`` broadcast as extra
constant channels (or appended to the flattened image for MLPs). A class count of 0
means unconditional and leaves inputs untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y.long(), num_classes).to(dtype=like.dtype)


def append_to_vector(v: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if not num_classes:
        return v
    if y is None:
        raise ValueError("this network is conditional: pass class labels y")
    return torch.cat([v, one_hot(y, num_classes, v)], dim=1)


def append_as_channels(x: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if not num_classes:
        return x
    if y is None:
        raise ValueError("this network is conditional: pass class labels y")
    maps = one_hot(y, num_classes, x)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return torch.cat([x, maps], dim=1)
