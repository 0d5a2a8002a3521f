"""What the networks need to know about a dataset, and the batch streams.

Shapes come from the data, never from model options (as in stylegan2-ada-pytorch):
every dataset builder returns a ``DataSpec`` next to its data, and ``build.py`` hands
the spec to the networks.

A *stream* yields batches forever (epochs roll over by themselves) as dicts of
tensors: ``{"image": float in [-1, 1], "label": int64}`` for labelled data. Streams
remember where they are (``state_dict``), so a resumed run sees exactly the batches
an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch

from gantrain.errors import OptionError


@dataclass(frozen=True)
class DataSpec:
    channels: int
    image_size: int
    num_classes: int = 0  # 0: no class labels
    size: int = 0  # number of examples
    class_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()  # binary attributes in batch["attrs"] (CelebA)
    name: str = ""
    # Image-to-image translation: "paired" (pix2pix: batch["A"] and its target batch["B"]),
    # "unpaired" (CycleGAN: an A and an unrelated B), "none" (plain batch["image"]).
    pairing: str = "none"
    extras: dict = field(default_factory=dict, compare=False)


# What each pairing holds, in words (logs, errors).
PAIRING_NAMES = {"none": "single images", "paired": "paired A|B images", "unpaired": "two unpaired domains"}


class BatchStream(Protocol):
    batch_size: int

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class EpochStream:
    """Where a stream is: the epoch, and how many of its batches were handed out.
    Every epoch is ``epoch_permutation(size, seed, epoch)`` cut into full batches (the
    ragged last one is dropped: BatchNorm and fixed shapes want full batches).

    Under data parallelism (``shard=(rank, world)``) every process draws the same
    permutation and cuts it into global batches of ``world * batch_size``; process
    ``rank`` takes the ``rank``-th slice of each. The processes then see disjoint
    images, their epoch and batch counters agree, and one process's ``state_dict``
    (rank 0 saves it) resumes them all."""

    def __init__(
        self, size: int, batch_size: int, seed: int, device: torch.device | str, shard: tuple[int, int] = (0, 1)
    ) -> None:
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard {shard}: the rank must lie in [0, world)")
        if batch_size * world > size:
            per = f" x {world} processes" if world > 1 else ""
            raise OptionError(
                "batch_size",
                f"batch_size={batch_size}{per} is larger than the dataset ({size} images); lower batch_size",
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world = rank, world
        self.device = torch.device(device)
        self.epoch = 0
        self.batch = 0
        self.batches_per_epoch = size // (batch_size * world)

    def remaining_positions(self) -> torch.Tensor:
        """The positions in this epoch's order of this process's items not yet handed
        out, in the order it gets them (positions, not images: seeded augmentation
        keys on them)."""
        global_batch = self.batch_size * self.world
        positions = torch.arange(self.batch * global_batch, self.batches_per_epoch * global_batch)
        return positions.view(-1, self.world, self.batch_size)[:, self.rank].flatten()

    def remaining_order(self) -> torch.Tensor:
        """The indices of this epoch's batches not yet handed out (this process's share)."""
        return epoch_permutation(self.size, self.seed, self.epoch)[self.remaining_positions()]

    def state_dict(self) -> dict:
        # "position": the items of the epoch's order handed out to all processes together,
        # which a stream on another number of processes (or batch size) can resume from.
        return {"epoch": self.epoch, "batch": self.batch, "position": self.batch * self.batch_size * self.world}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        if "position" not in state:  # written before positions were saved: same processes assumed
            self.batch = min(int(state["batch"]), self.batches_per_epoch)
            return
        # The first whole global batch at or after the position: no image of the epoch
        # is seen twice; on another process count up to one global batch is skipped.
        global_batch = self.batch_size * self.world
        self.batch = min(-(-int(state["position"]) // global_batch), self.batches_per_epoch)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a function of (seed, epoch) only, so that
    resuming needs no generator state, just the epoch and the position in it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (an epoch's order, its flips) on ``device`` without the host
    waiting for the GPU: a copy from pageable memory would synchronise, one from pinned
    memory is queued like any kernel."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range every generator in gantrain outputs."""
    return images_uint8.float().div_(127.5).sub_(1.0)
