"""An exponential moving average of the generator's weights (Karras et al., 2018;
Yazici et al., 2019): samples from the averaged weights are usually smoother and
better than from the last iterate, at the cost of one extra copy of G.

``shadow <- d * shadow + (1 - d) * G`` after every G update, with a warm-up
``d = min(decay, (1 + n) / (10 + n))`` after n updates (as TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``), so that early samples are not
dominated by the random initial weights.

BatchNorm's running statistics belong to the weights that produced them: the trained
G's describe G's activations, not the averaged weights'. So when the model gives
calibration inputs (noise GANs: a fixed, seeded set of noise batches), the copy's
statistics are its own: recomputed from those inputs, as a plain average over the
batches, before the copy is used (sampled from, evaluated, saved, exported or chosen
as best) and not at every update. The inputs are the same every time, so the
statistics are a function of the averaged weights alone, and a resumed run computes
what an uninterrupted one did. Without calibration inputs (the translators, whose G
runs on batch statistics at test time by default) the buffers are copied from G.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn

CalibrationInputs = Callable[[torch.device], Iterable[tuple]]


@torch.no_grad()
def recompute_batch_norm(net: nn.Module, batches: Iterable[tuple]) -> None:
    """Reset every tracked BatchNorm of ``net`` and average its batch statistics over
    ``net(*inputs)`` for each batch of inputs (momentum None: a cumulative average).
    The net's mode, momenta and the random state are as they were afterwards."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was_training = net.training
    device = next(net.parameters()).device
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        net.train()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for inputs in batches:
                net(*inputs)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.train(was_training)


class EMA:
    def __init__(self, module: nn.Module, decay: float, calibration: CalibrationInputs | None = None) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.calibration = calibration
        self._module = copy.deepcopy(module).eval().requires_grad_(False)
        self._calibrated = False

    @property
    def module(self) -> nn.Module:
        """The averaged G, with BatchNorm statistics of its own (see the module)."""
        if self.calibration is not None and not self._calibrated:
            device = next(self._module.parameters()).device
            recompute_batch_norm(self._module, self.calibration(device))
            self._calibrated = True
        return self._module

    @property
    def shadow(self) -> nn.Module:
        """The averaged G as it stands, statistics not recomputed: for what reads only
        its weights (the non-finite check)."""
        return self._module

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        shadow = list(self._module.parameters())
        torch._foreach_lerp_(shadow, [p.detach() for p in module.parameters()], weight)
        if self.calibration is None:
            for shadow_buffer, buffer in zip(self._module.buffers(), module.buffers()):
                shadow_buffer.copy_(buffer)
        self._calibrated = False

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self._module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self._calibrated = False  # a checkpoint from before calibration existed holds G's statistics
