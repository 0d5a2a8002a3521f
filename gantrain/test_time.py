"""How a translator's generator runs at test time: one choice (``model.test_mode``)
used everywhere G translates: the sample grids, the ``val/*`` metrics, ``gantrain-eval``
and ``gantrain-generate --inputs``.

* ``train`` (the default, the paper's): Isola et al. (2017) apply G at test time
  exactly as in training, BatchNorm on the statistics of the test batch and dropout
  on; the authors' ``test.py`` switches to eval mode only with ``--eval``, and runs
  one image at a time. So each image is translated on its own, in train mode.
* ``eval``: PyTorch's usual eval mode, BatchNorm's running statistics and no dropout,
  in batches.

Either way translating changes nothing: the BatchNorm layers use the batch's own
statistics without tracking them (no buffer moves), and the dropout masks are drawn
from a forked random state (the training RNG is where it was), so training goes on
as if nothing had been translated, and a resumed run stays bit-exact. The tools
(``gantrain-eval``, ``gantrain-generate``) also give a ``seed`` for the masks, so that
their outputs are the same from one call to the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, get_args

import torch
from torch import nn

TestMode = Literal["train", "eval"]
TEST_MODES: tuple[str, ...] = get_args(TestMode)


@contextmanager
def batch_statistics(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in train mode with every BatchNorm normalising by the batch's statistics
    and leaving its running statistics alone; the modes as they were afterwards."""
    was_training = net.training
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in norms]
    net.train()
    for m in norms:
        m.track_running_stats = False  # train mode then neither reads nor updates the buffers
    try:
        yield net
    finally:
        for m, flag in zip(norms, tracked):
            m.track_running_stats = flag
        net.train(was_training)


@torch.no_grad()
def translate(
    net: nn.Module,
    images: torch.Tensor,
    mode: str,
    batch_size: int | None = None,
    device: torch.device | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """``net`` over ``images`` as at test time (``mode``: see the module). ``batch_size``
    and ``device``: eval mode runs in batches of that size, moved to ``device``, and the
    results come back to where ``images`` are. ``seed``: train mode's dropout masks
    from that seed (else from the current random state, which is left as it was)."""
    if mode not in TEST_MODES:
        raise ValueError(f"test mode {mode!r} is not one of {', '.join(TEST_MODES)}")
    device = device or images.device
    if mode == "eval":
        size = batch_size or max(len(images), 1)
        was_training = net.training
        net.eval()
        try:
            return torch.cat(
                [net(images[k : k + size].to(device)).to(images.device) for k in range(0, len(images), size)]
            )
        finally:
            net.train(was_training)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), batch_statistics(net):
        if seed is not None:
            torch.manual_seed(seed)
        return torch.cat([net(image[None].to(device)).to(images.device) for image in images])


def describe(mode: str, seed: int) -> str:
    """How G ran, for an evaluation report's protocol."""
    return f"test_mode={mode}" + (f", dropout seed {seed}" if mode == "train" else "")


def translator(net: nn.Module, mode: str, seed: int | None = None):
    """``translate`` with ``net``, ``mode`` and ``seed`` bound: ``f(images, batch_size=None,
    device=None)``, the one shape every tool and metric calls a translator in."""

    def run(images: torch.Tensor, batch_size: int | None = None, device: torch.device | None = None) -> torch.Tensor:
        return translate(net, images, mode, batch_size, device, seed=seed)

    return run
