"""The generator as it runs at test time, as one module a graph exporter can trace.

Noise generators sample in eval mode (``models/common.eval_forward``: BatchNorm's
running statistics, no dropout); so does a translator with ``test_mode: eval``.

A translator with ``test_mode: train`` (the default, the papers': Isola et al. 2017,
Sec. 3.3 and the authors' ``test.py``; see ``gantrain/test_time.py``) translates each image
on its own with G in train mode: every BatchNorm normalises by the statistics of that
one image, and dropout is on. An exported graph must not depend on a runtime's
train/eval switch (exported pix2pix models changed behaviour silently when a runtime
ran them in eval mode), so the behaviour is built into the graph:

* BatchNorm on a batch of one image normalises each channel over its H x W positions with
  the biased variance, which is instance normalisation (Ulyanov et al. 2016, Eq. 4) with
  BatchNorm's affine weights: ``PerImageNorm``. So a batch of N images is translated as N
  separate calls would be, whatever N.
* Dropout (Srivastava et al. 2014) becomes ``x * (u >= p) / (1 - p)`` with u uniform on
  [0, 1): ``LiveDropout``. An ONNX ``Dropout`` node would do the same, but runtimes remove
  it as an inference-time no-op (onnxruntime's graph optimiser does); a random-uniform
  node and a comparison are kept. The masks come from the runtime's own generator.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.errors import UserError


class PerImageNorm(nn.Module):
    """A 2-d BatchNorm in train mode on each image alone (its affine weights, its eps)."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class LiveDropout(nn.Module):
    """Dropout that is on whatever the module's mode, with torch's scaling by 1 / (1 - p)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p >= 1.0:
            return torch.zeros_like(x)
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * keep / (1.0 - self.p)


def _replace(net: nn.Module, dropout: bool) -> None:
    """In place: the train-mode layers of ``net`` as ``PerImageNorm`` / ``LiveDropout``
    (``dropout`` False: dropout left out, for the deterministic twin parity compares)."""
    for name, child in net.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(net, name, PerImageNorm(child))
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            raise UserError(
                f"{type(child).__name__} in a translator with test_mode=train cannot be exported per image: "
                f"export a run with model.test_mode=eval"
            )
        elif isinstance(child, nn.Dropout):
            setattr(net, name, LiveDropout(child.p) if dropout and child.p > 0 else nn.Identity())
        else:
            _replace(child, dropout)


def has_dropout(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in net.modules())


class NoiseGenerator(nn.Module):
    """``(z, label) -> image`` (or ``z -> image`` unconditional), in eval mode."""

    def __init__(self, net: nn.Module, conditional: bool) -> None:
        super().__init__()
        self.net, self.conditional = copy.deepcopy(net).eval().requires_grad_(False), conditional

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z, label) if self.conditional else self.net(z)


def as_graph(net: nn.Module, kind: str, test_mode: str | None, conditional: bool, dropout: bool = True):
    """A copy of ``net`` (one direction's G) behaving as at test time, in eval mode, for export.
    ``dropout`` False: the same graph without its dropout (the deterministic twin)."""
    if kind == "noise":
        return NoiseGenerator(net, conditional)
    graph = copy.deepcopy(net).requires_grad_(False)
    if test_mode == "train":
        _replace(graph, dropout)
    return graph.eval()
