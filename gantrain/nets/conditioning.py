"""Class conditioning shared by the conditional nets (Mirza & Osindero, 2014).

G sees ``[z, onehot(y)]``. D reads the class one of two ways (``conditioning``):
* ``concat`` (default, as in the paper): the image with ``onehot(y)`` broadcast as
  extra constant channels (appended to the flattened image for MLPs);
* ``projection`` (Miyato & Koyama, 2018): an inner product of a learned class
  embedding with D's last features, added to the logit.
A class count of 0 means unconditional and leaves inputs untouched.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.errors import OptionError

Conditioning = Literal["concat", "projection"]


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Class indices -> one-hot rows. Rows of class weights (N, num_classes) pass through:
    a blend of two classes is how gantrain-walk walks from one class to another."""
    if y.is_floating_point() and y.dim() == 2:
        if y.shape[1] != num_classes:
            raise ValueError(f"class weights with {y.shape[1]} columns for {num_classes} classes")
        return y.to(dtype=like.dtype)
    return F.one_hot(y.long(), num_classes).to(dtype=like.dtype)


def append_to_vector(v: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if not num_classes:
        return v
    if y is None:
        raise ValueError("this network is conditional: pass class labels y")
    return torch.cat([v, one_hot(y, num_classes, v)], dim=1)


def check_conditioning(conditioning: str) -> None:
    if conditioning not in ("concat", "projection"):
        raise OptionError("conditioning", f"conditioning={conditioning!r} is not known: use concat or projection")


def append_as_channels(x: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if not num_classes:
        return x
    if y is None:
        raise ValueError("this network is conditional: pass class labels y")
    maps = one_hot(y, num_classes, x)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return torch.cat([x, maps], dim=1)


class Projection(nn.Module):
    """The projection discriminator's class term (Miyato & Koyama, 2018):
    ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``. D adds this to its unconditional
    logit instead of reading the label as extra input channels."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, features: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("this network is conditional: pass class labels y")
        return (self.embed(y.long()) * features).sum(1)
