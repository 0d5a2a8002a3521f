"""Datasets read from files one image at a time (CelebA, folders, pix2pix, CycleGAN).

Decoding JPEGs is the slow part, so these go through ``DataLoader`` worker processes.
Items are uint8 tensors (4x less to copy between processes than floats); the stream
converts them to [-1, 1] after collation, on the training device.

The order of each epoch is ``epoch_permutation(n, seed, epoch)`` and the stream counts
the batches it has handed out, so a resumed run starts at the very next batch.

Datasets with random augmentation (pix2pix crops and flips) set ``seeded_items = True``
and are indexed with ``(index, item_seed)``: the seed is a hash of (stream seed, epoch,
position in the epoch), so an item's crop does not depend on which worker process
loads it, on how many there are, or on whether the run was resumed.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from gantrain.data.spec import DataSpec, EpochStream, to_unit_range


_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: nearby inputs give unrelated 64-bit outputs."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def item_seed(seed: int, epoch: int, position: int) -> int:
    """The seed of the item at ``position`` of epoch ``epoch``: a function of the three
    numbers only (63 bits, so any ``torch.Generator.manual_seed`` takes it)."""
    return _mix64(_mix64(_mix64(seed & _MASK64) ^ epoch) ^ position) >> 1


def _on_device(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images (every uint8 tensor: "image", pix2pix's "A" and "B") become [-1, 1] floats
    on the device, after the copy (a quarter of the bytes); the rest is only moved."""
    value = value.to(device, non_blocking=True)
    return to_unit_range(value) if value.dtype == torch.uint8 else value


class LoaderStream(EpochStream):
    def __init__(self, dataset: Dataset, batch_size: int, seed: int,
                 device: torch.device | str = "cpu", num_workers: int = 0,
                 shard: tuple[int, int] = (0, 1)) -> None:
        super().__init__(len(dataset), batch_size, seed, device, shard)
        self.dataset = dataset
        self.num_workers = num_workers

    def _epoch_sampler(self) -> list:
        order = self.remaining_order().tolist()
        if not getattr(self.dataset, "seeded_items", False):
            return order
        # Absolute positions in the epoch (not in what is left of it, nor in this process's
        # share): a stream resumed mid-epoch, or on more processes, hands each item the
        # seed an uninterrupted single-process stream would have.
        positions = self.remaining_positions().tolist()
        return [(index, item_seed(self.seed, self.epoch, p)) for p, index in zip(positions, order)]

    def _epoch_loader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self._epoch_sampler(),
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
                yield {key: _on_device(value, self.device) for key, value in batch.items()}
            self.epoch += 1
            self.batch = 0


class DatasetSource:
    """A map-style dataset whose items are ``{"image": uint8 (C, H, W), ...}`` (or, for
    translation data, ``{"A": uint8, "B": uint8}``)."""

    def __init__(self, dataset: Dataset, spec: DataSpec) -> None:
        self.dataset = dataset
        self.spec = spec

    def stream(self, batch_size: int, seed: int, device: torch.device | str = "cpu",
               num_workers: int = 0, shard: tuple[int, int] = (0, 1)) -> LoaderStream:
        return LoaderStream(self.dataset, batch_size, seed, device, num_workers, shard)
