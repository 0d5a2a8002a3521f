"""Datasets that fit in memory (the MNIST family, the bundled sample, synthetic).

They are kept as one uint8 tensor and batched by indexing it: no per-item Python,
no worker processes, no PIL. On a GPU the tensor lives on the device, so a batch
costs one gather, the flips (``hflip``, decided as in ``loader.py``) and one conversion,
all on the device. This is why the small datasets do not go
through ``torch.utils.data.DataLoader``: its per-sample ``__getitem__`` and collate
would dominate the step time of a small GAN.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from gantrain.data.loader import mirror, mirror_flips
from gantrain.data.spec import EpochStream, to_unit_range, upload
from gantrain.data.subset import Part, choose, part_of


def resize_uint8(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize a (N, C, H, W) uint8 stack once, at load time (bilinear, antialiased)."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    resized = F.interpolate(
        images.float(), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


class TensorStream(EpochStream):
    """Endless shuffled batches from in-memory uint8 images (N, C, H, W). ``extras``: more
    per-item tensors for the batch, gathered alike (CelebA's "attrs")."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] = (0, 1),
        hflip: bool = False,
        extras: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("TensorStream wants uint8 images of shape (N, C, H, W)")
        super().__init__(len(images), batch_size, seed, device, shard)
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device, torch.int64)
        self.extras = {key: value.to(self.device) for key, value in (extras or {}).items()}
        self.hflip = hflip

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            # view, not split: an epoch already used up must give no batch, not an empty one.
            order = upload(self.remaining_order(), self.device).view(-1, self.batch_size)
            flips = mirror_flips(self) if self.hflip else [None] * len(order)
            for index, row in zip(order, flips):
                self.batch += 1
                images = self.images[index]
                batch = {"image": to_unit_range(images if row is None else mirror(images, row))}
                if self.labels is not None:
                    batch["label"] = self.labels[index]
                batch.update((key, value[index]) for key, value in self.extras.items())
                yield batch
            self.epoch += 1
            self.batch = 0


class InMemorySource:
    """A dataset held as one uint8 tensor: its spec plus a way to stream it (a
    ``DataSource``, ``data/source.py``)."""

    in_memory = True
    # The files the images were decoded from, in order (a cached folder or CelebA), else None.
    files: list[Path] | None = None

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        spec,
        hflip: bool = False,
        extras: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.images = images
        self.labels = labels
        self.spec = spec
        self.hflip = hflip
        self.extras = extras or {}

    def stream(
        self,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> TensorStream:
        del num_workers  # nothing to parallelise: a batch is one gather
        return TensorStream(self.images, self.labels, batch_size, seed, device, shard, self.hflip, self.extras)

    def images_at(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.images[index], None if self.labels is None else self.labels[index]

    def class_labels(self) -> torch.Tensor | None:
        return self.labels

    def subset(self, n: int, seed: int) -> tuple[InMemorySource, dict[str, Part]]:
        """A seeded random ``n`` of the images, with their labels and extras (``subset.py``);
        the spec's size becomes ``n``, its classes stay those of the whole set."""
        index = choose(len(self.images), n, seed)
        extras = {key: value[index] for key, value in self.extras.items()}
        labels = None if self.labels is None else self.labels[index]
        limited = InMemorySource(self.images[index], labels, replace(self.spec, size=len(index)), self.hflip, extras)
        return limited, {"images": part_of(len(self.images), index, self.files)}
