"""An exponential moving average of the generator's weights (Karras et al., 2018;
Yazici et al., 2019): samples from the averaged weights are usually smoother and
better than from the last iterate, at the cost of one extra copy of G.

``shadow <- d * shadow + (1 - d) * G`` after every G update, with a warm-up
``d = min(decay, (1 + n) / (10 + n))`` after n updates (as TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``), so that early samples are not
dominated by the random initial weights. Buffers (BatchNorm's running statistics)
are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        shadow = list(self.module.parameters())
        torch._foreach_lerp_(shadow, [p.detach() for p in module.parameters()], weight)
        for shadow_buffer, buffer in zip(self.module.buffers(), module.buffers()):
            shadow_buffer.copy_(buffer)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
