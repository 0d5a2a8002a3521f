"""Data parallelism across the processes ``torchrun`` starts (one per GPU, or several on CPUs).

Every process builds the same nets from the same seed, trains on its own slice of each
global batch (``EpochStream``'s ``shard``) with its own noise, and averages the
gradients of each net with one all-reduce before every optimizer step, so all
processes apply the same update and their weights stay identical.

Why not ``torch.nn.parallel.DistributedDataParallel``: a GAN step runs D inside G's
update with D's weights frozen (DDP's reducer expects every parameter it wraps to get a
gradient in every backward, or needs ``find_unused_parameters`` and its extra graph
walk), and the gradient penalties differentiate D twice, which DDP does not support.
One flat all-reduce per net per step is the same traffic DDP sends, without its
overlap of communication and backward; for the small nets trained here the saving in
complexity is worth more than that overlap.

Control messages (averaged log values, "did any process see a NaN", the checkpoint's
RNG states, the command line) go through a gloo group on the CPU; gradients go through
NCCL on GPUs, gloo on CPUs. Only rank 0 writes: logs, samples, evaluations, checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from gantrain.errors import UserError

T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)  # how long a process waits for the others at a collective
PATIENT_TIMEOUT = timedelta(hours=6)  # for a data cache being built (node_leaders_first)


class RankZeroError(UserError):
    """An error rank 0 met and reports; the other processes exit without repeating it."""


class SingleProcess:
    """The context of an ordinary run: every collective is the identity."""

    rank, world, local_rank = 0, 1, 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce_gradients(self, net: nn.Module) -> None:
        """Average the gradients of ``net`` over the processes."""

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the processes."""
        return values

    def any(self, flag: bool, group=None) -> bool:
        """True on every process when it is true on any (over ``group``, default all)."""
        return flag

    def gather(self, obj) -> list | None:
        """Every process's ``obj`` on rank 0 (None elsewhere)."""
        return [obj]

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        return obj

    def broadcast_nets(self, *nets: nn.Module) -> None:
        """Rank 0's parameters and buffers on every process."""

    def from_rank0(self, read: Callable[[], T]) -> T:
        """``read()`` run by rank 0 alone, its result on every process (a checkpoint read
        once, and no shared filesystem needed on other nodes). A ``UserError`` there is
        raised on every process, as ``RankZeroError`` elsewhere (rank 0 reports it)."""
        answer = None
        if self.is_main:
            try:
                answer = ("ok", read())
            except UserError as exc:
                answer = ("error", exc)
        status, value = self.broadcast(answer)
        if status == "error":
            raise value if self.is_main else RankZeroError(str(value))
        return value

    def node_leaders_first(self, build: Callable[[], T]) -> T:
        """``build()`` on every process, first by each node's local rank 0 and then, once
        all of those are done, by the others: a one-time data cache is decoded once per
        node (the others find it), not by every process at once. A ``UserError`` of a
        leader stops every process; the others exit quietly (the leader reports it)."""
        return build()

    def use_device(self, device: torch.device) -> None:
        """Choose the collective for gradients on ``device``."""

    def close(self) -> None:
        """Let go of the process groups this context holds (see ``stop``)."""


class DataParallel(SingleProcess):
    def __init__(self, rank: int, world: int, local_rank: int) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.grad_group = None  # the default (gloo) group until use_device picks NCCL
        # For the one wait that may rightly outlast TIMEOUT: a node's first process
        # decoding a large image folder into the cache while the others wait.
        self.patient_group = dist.new_group(backend="gloo", timeout=PATIENT_TIMEOUT)

    def use_device(self, device: torch.device) -> None:
        if device.type == "cuda" and self.grad_group is None:
            # NCCL's own default is 10 minutes; rank 0 alone may evaluate that long
            # (FID on many samples) while the others wait at their next all-reduce.
            self.grad_group = dist.new_group(backend="nccl", timeout=TIMEOUT)

    def reduce_gradients(self, net: nn.Module) -> None:
        params = [p for p in net.parameters() if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, group=self.grad_group)
        flat.div_(self.world)
        for p, chunk in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(chunk.view_as(p.grad))

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        if not values:
            return values
        total = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(total)
        return dict(zip(values, (total / self.world).tolist()))

    def any(self, flag: bool, group=None) -> bool:
        seen = torch.tensor([int(flag)])
        dist.all_reduce(seen, op=dist.ReduceOp.MAX, group=group)
        return bool(seen.item())

    def gather(self, obj) -> list | None:
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def node_leaders_first(self, build: Callable[[], T]) -> T:
        built, error = None, None
        if self.local_rank == 0:
            try:
                built = ("ok", build())
            except UserError as exc:
                error = exc
        if self.any(error is not None, self.patient_group):  # also the barrier: every leader is done
            if error is not None:
                raise error
            raise RankZeroError("another process could not build the data (its error is above)")
        return built[1] if built else build()

    def broadcast_nets(self, *nets: nn.Module) -> None:
        for net in nets:
            for tensor in (*net.parameters(), *net.buffers()):
                dist.broadcast(tensor.data, src=0, group=self.grad_group)

    def close(self) -> None:
        self.patient_group = self.grad_group = None


_current: SingleProcess = SingleProcess()


def current() -> SingleProcess:
    """This process's context: DataParallel under torchrun, else SingleProcess."""
    return _current


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start() -> SingleProcess:
    """Join the other processes torchrun started (its environment names them) over gloo."""
    global _current
    if not launched_by_torchrun() or isinstance(_current, DataParallel):
        return _current
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    # torch.distributed.nn.functional binds ``group=group.WORLD`` as default arguments
    # when it is first imported: imported after the default group exists (torchvision
    # and the metrics import it), it would hold that group until interpreter exit, past
    # ``stop`` (see there). Imported now, its defaults are None.
    import torch.distributed.nn  # noqa: F401

    dist.init_process_group(backend="gloo", rank=rank, world_size=world, timeout=TIMEOUT)
    _current = DataParallel(rank, world, local_rank)
    return _current


def stop() -> None:
    """Destroy every process group, and with them their native threads, now.

    ``destroy_process_group`` only forgets the groups: a group object that Python still
    holds keeps its gloo threads (``pt_gloo_runloop``, ``gloo_tcp_loop``) running until
    the object is freed. Groups were held that way (this context's own, which the
    Trainer holds; the default group, in torch.distributed.nn's default arguments: see
    ``start``), so they were freed at interpreter exit, where a gloo thread that drops
    its last tensor needs the GIL, cannot get it, and the process aborts ("terminate
    called without an active exception", SIGABRT), now and then. So the context lets
    go of its groups first, whoever still holds the context; freed here, each group
    joins its threads while the interpreter is whole."""
    global _current
    _current.close()
    _current = SingleProcess()
    if dist.is_initialized():
        dist.destroy_process_group()
