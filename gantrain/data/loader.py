"""Datasets read from files one image at a time (CelebA, folders of images).

Decoding JPEGs is the slow part, so these go through ``DataLoader`` worker processes.
Items are uint8 tensors (4x less to copy between processes than floats); the stream
converts them to [-1, 1] after collation, on the training device.

The order of each epoch is ``epoch_permutation(n, seed, epoch)`` and the stream counts
the batches it has handed out, so a resumed run starts at the very next batch.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from gantrain.data.spec import DataSpec, EpochStream, to_unit_range


class LoaderStream(EpochStream):
    def __init__(self, dataset: Dataset, batch_size: int, seed: int,
                 device: torch.device | str = "cpu", num_workers: int = 0) -> None:
        super().__init__(len(dataset), batch_size, seed, device)
        self.dataset = dataset
        self.num_workers = num_workers

    def _epoch_loader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.remaining_order().tolist(),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            # Workers' seeds come from this generator, not from the global RNG, so that
            # starting a loader mid-run (resume) leaves the training RNG stream untouched.
            generator=torch.Generator().manual_seed(self.seed + self.epoch),
        )

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            for batch in self._epoch_loader():
                self.batch += 1
                out = {"image": to_unit_range(batch["image"].to(self.device, non_blocking=True))}
                for key, value in batch.items():
                    if key != "image":
                        out[key] = value.to(self.device, non_blocking=True)
                yield out
            self.epoch += 1
            self.batch = 0


class DatasetSource:
    """A map-style dataset whose items are ``{"image": uint8 (C, H, W), ...}``."""

    def __init__(self, dataset: Dataset, spec: DataSpec) -> None:
        self.dataset = dataset
        self.spec = spec

    def stream(self, batch_size: int, seed: int, device: torch.device | str = "cpu",
               num_workers: int = 0) -> LoaderStream:
        return LoaderStream(self.dataset, batch_size, seed, device, num_workers)
