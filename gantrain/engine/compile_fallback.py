"""The fast path's safety net: training on when ``torch.compile`` fails.

``torch.compile`` compiles lazily, at a net's first call (TorchDynamo: Ansel et al.,
2024, "PyTorch 2"): a missing C++ compiler, an operator inductor cannot lower or a Triton
error shows only inside the first training step, after part of it has run (D's update,
say, with G's still to compile). ``Compilation`` keeps a CPU copy of the trainer's
state from before that step; when the step fails, the loop restores it and trains
eagerly. The run is then the one ``speed.compile=false`` would have made, plus one
warning.

Under data parallelism (``engine/distributed.py``) one process's compilation can fail
while the others' succeed; those would wait forever in a gradient all-reduce the failed
one never reaches. So in the first compiled step every process says, before each
all-reduce and at the end, whether its compilation failed (``check_peers``), and all of
them fall back together.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from gantrain.engine.distributed import SingleProcess
from gantrain.engine.speed import uncompile
from gantrain.errors import UserError

log = logging.getLogger("gantrain")

T = TypeVar("T")


class CompileFailed(Exception):
    """torch.compile failed in the first step; ``snapshot`` is the state from before it."""

    def __init__(self, snapshot: dict) -> None:
        super().__init__("torch.compile failed")
        self.snapshot = snapshot


class _PeerCompileFailed(Exception):
    """Another process's torch.compile failed in the first step."""


class Compilation:
    """The nets ``speed.compile`` compiled, and whether a step has run them yet."""

    def __init__(self, parallel: SingleProcess) -> None:
        self.parallel = parallel
        self.nets: list[nn.Module] = []
        self.unproven = False  # compiled, and no step has run since

    def start(self, nets: list[nn.Module]) -> None:
        """``nets`` were just compiled (``speed.compile_nets``): the next step proves them."""
        self.nets, self.unproven = nets, bool(nets)

    def first_step(self, update: Callable[[], T], state: Callable[[], dict]) -> T:
        """Runs ``update`` (the step in which compilation happens). On failure raises
        ``CompileFailed`` with ``state()`` from before the step, on every process alike."""
        snapshot = copy_to_cpu(state())  # on the GPU it would double the memory in use
        try:
            result = update()
            self.check_peers()
        except (UserError, torch.OutOfMemoryError, KeyboardInterrupt):
            raise  # not compilation's failures: they surface as they would from an eager step
        except _PeerCompileFailed:
            raise CompileFailed(snapshot) from None
        except Exception as exc:
            if self.parallel.world > 1:
                self.parallel.any(True)  # tell the others, at their next check
            raise CompileFailed(snapshot) from exc
        self.unproven = False
        return result

    def check_peers(self) -> None:
        """Under data parallelism, in the first compiled step only: before each gradient
        all-reduce and at the end, every process says whether its compilation failed (a
        process that fails says so at once, in place of its next check). So the
        collectives stay paired, and all processes fall back together, not some
        waiting forever for the others' all-reduce."""
        if self.unproven and self.parallel.world > 1 and self.parallel.any(False):
            raise _PeerCompileFailed

    def abandon(self, failure: CompileFailed) -> None:
        """Back to eager nets, with one warning saying why; the caller restores
        ``failure.snapshot``."""
        cause = failure.__cause__
        if cause is None:
            log.warning(
                "torch.compile failed at the first step on another process; training without it "
                "(speed.compile=false skips it)"
            )
        else:
            # Dynamo's message: "backend='inductor' raised:" and, on the next line, the error.
            first = " ".join([line.strip() for line in str(cause).splitlines() if line.strip()][:2])[:300]
            log.warning(
                "torch.compile failed at the first step (%s: %s); training without it (speed.compile=false skips it)",
                type(cause).__name__,
                first,
            )
        uncompile(self.nets)
        self.nets, self.unproven = [], False


def copy_to_cpu(value):
    """A deep copy of a state with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: copy_to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copy_to_cpu(item) for item in value)
    return copy.deepcopy(value)
