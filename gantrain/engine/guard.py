"""Catching non-finite losses and weights, cheaply.

A GAN that diverges usually shows it as an Inf or NaN loss, sometimes first as a
non-finite weight (a clipped critic, an exploding BatchNorm statistic). Checking every
step would cost a host sync per step, so the loop checks at the logging interval (the
logged values are read back there anyway) and before every checkpoint (so a
checkpoint never holds a non-finite weight): the norms of all parameters and buffers
of each net are reduced on the device and read back in one sync.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

NonFinite = Literal["stop", "rollback"]


def nonfinite_values(values: dict[str, float]) -> list[str]:
    return [tag for tag, value in values.items() if not math.isfinite(value)]


def nonfinite_nets(nets: dict[str, nn.Module]) -> list[str]:
    """The names of the nets with any non-finite parameter or buffer."""
    names, flags = [], []
    for name, net in nets.items():
        tensors = [t.detach() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
        if not tensors:
            continue
        norms = torch._foreach_norm(tensors)  # NaN/Inf anywhere in a tensor shows in its norm
        flags.append(torch.stack(norms).isfinite().all())
        names.append(name)
    if not flags:
        return []
    finite = torch.stack(flags).tolist()  # the one host sync
    return [f"{name} weights" for name, ok in zip(names, finite) if not ok]


def explain(problems: list[str], step: int, checkpoint_step: int | None, mode: NonFinite) -> str:
    """One line: what went non-finite, where the last good state is, what to try."""
    kept = (f"the last good checkpoint (step {checkpoint_step}) is kept" if checkpoint_step is not None
            else "no checkpoint was written yet")
    fixes = "lower optim.g.lr / optim.d.lr, try loss=wgan_gp or loss=hinge, or add loss.r1_weight=10"
    if mode == "rollback":
        fixes += "; trainer.max_rollbacks was reached"
    else:
        fixes += ", or set trainer.on_nonfinite=rollback to go back to the checkpoint with halved learning rates"
    return f"{', '.join(problems)} became non-finite by step {step}; {kept}. Try: {fixes}"
