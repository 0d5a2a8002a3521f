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

from gantrain.data.spec import DataSpec, epoch_permutation, to_unit_range
from gantrain.errors import UserError


class LoaderStream:
    def __init__(self, dataset: Dataset, batch_size: int, seed: int,
                 device: torch.device | str = "cpu", num_workers: int = 0) -> None:
        if batch_size > len(dataset):
            raise UserError(f"data.batch_size={batch_size} is larger than the dataset "
                            f"({len(dataset)} images); lower data.batch_size")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.epoch = 0
        self.batch = 0
        self.batches_per_epoch = len(dataset) // batch_size

    def _epoch_loader(self) -> DataLoader:
        order = epoch_permutation(len(self.dataset), self.seed, self.epoch)
        remaining = order[self.batch * self.batch_size:self.batches_per_epoch * self.batch_size]
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=remaining.tolist(),
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

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.batch = int(state["batch"])


class DatasetSource:
    """A map-style dataset whose items are ``{"image": uint8 (C, H, W), ...}``."""

    def __init__(self, dataset: Dataset, spec: DataSpec) -> None:
        self.dataset = dataset
        self.spec = spec

    def stream(self, batch_size: int, seed: int, device: torch.device | str = "cpu",
               num_workers: int = 0) -> LoaderStream:
        return LoaderStream(self.dataset, batch_size, seed, device, num_workers)
