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

from dataclasses import dataclass, field
from typing import Iterator, Protocol

import torch


@dataclass(frozen=True)
class DataSpec:
    channels: int
    image_size: int
    num_classes: int = 0  # 0: no class labels
    size: int = 0  # number of examples
    class_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()  # binary attributes in batch["attrs"] (CelebA)
    name: str = ""
    extras: dict = field(default_factory=dict, compare=False)


class BatchStream(Protocol):
    batch_size: int

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a function of (seed, epoch) only, so that
    resuming needs no generator state, just the epoch and the position in it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range every generator in gantrain outputs."""
    return images_uint8.float().div_(127.5).sub_(1.0)
