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

A stream builds one ``DataLoader`` for its whole life, with persistent workers (starting
worker processes every epoch costs seconds, and each epoch's first batches waited for
them) and, on CUDA, pinned memory. Its sampler reads the stream's epoch and batch
counters whenever an epoch starts, so the batches are those of a loader per epoch.

``hflip`` (folder, CelebA; any stream) mirrors images after the batch reached the
device, as ``mirror_flips`` decides: bit 0 of each item's seed. The in-memory stream
(``memory.py``) flips the same way, so both yield the same batches for a seed.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gantrain.data.spec import DataSpec, EpochStream, to_unit_range, upload
from gantrain.data.subset import Part, SubsetItems, choose, files_of, part_of

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


def _mix64_array(x: np.ndarray) -> np.ndarray:
    """``_mix64`` of every element of a uint64 array (array arithmetic wraps mod 2**64)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def item_seeds(seed: int, epoch: int, positions: torch.Tensor) -> torch.Tensor:
    """``item_seed`` of many positions at once (int64): an epoch of MNIST in milliseconds."""
    inner = np.uint64(_mix64(_mix64(seed & _MASK64) ^ epoch))
    mixed = _mix64_array(inner ^ positions.cpu().numpy().astype(np.uint64).reshape(-1))
    return torch.from_numpy((mixed >> np.uint64(1)).astype(np.int64)).view(positions.shape)


def mirror_flips(stream: EpochStream) -> torch.Tensor:
    """Which items of the epoch's remaining batches ``hflip`` mirrors, (batches, batch_size)
    bools on the stream's device. Bit 0 of the item seed of each global position: no
    global RNG, so the choice survives a resume, any worker count and any sharding, and
    the in-memory stream and the DataLoader stream agree."""
    bits = item_seeds(stream.seed, stream.epoch, stream.remaining_positions()) & 1
    return upload(bits.bool(), stream.device).view(-1, stream.batch_size)


def mirror(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images, those with ``flips`` set mirrored left-right, on their device
    (uint8 or float alike: a flip moves pixels, it never changes them)."""
    return torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)


def _on_device(value: torch.Tensor, device: torch.device, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Images (every uint8 tensor: "image", pix2pix's "A" and "B") become [-1, 1] floats
    on the device, after the copy (a quarter of the bytes) and the flips; the rest is only moved."""
    value = value.to(device, non_blocking=True)
    if value.dtype != torch.uint8:
        return value
    return to_unit_range(value if flips is None else mirror(value, flips))


class _EpochItems(Sampler):
    """The stream's items still to come this epoch, read when an epoch starts (``iter(loader)``
    in the main process), so that one DataLoader with persistent workers serves every
    epoch. A weak reference: the stream owns the loader, and dropping the stream must
    shut the workers down at once, not at the next garbage collection."""

    def __init__(self, stream: LoaderStream) -> None:
        self._stream = weakref.ref(stream)

    def __iter__(self):
        return iter(self._stream()._epoch_sampler())

    def __len__(self) -> int:
        return len(self._stream().remaining_positions())


class LoaderStream(EpochStream):
    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
        shard: tuple[int, int] = (0, 1),
        hflip: bool = False,
    ) -> None:
        super().__init__(len(dataset), batch_size, seed, device, shard)
        self.dataset = dataset
        self.num_workers = num_workers
        self.hflip = hflip
        self.loader: DataLoader | None = None  # built at the first batch: no workers for a run that fails earlier

    def _epoch_sampler(self) -> list:
        order = self.remaining_order().tolist()
        if not getattr(self.dataset, "seeded_items", False):
            return order
        # Absolute positions in the epoch (not in what is left of it, nor in this process's
        # share): a stream resumed mid-epoch, or on more processes, hands each item the
        # seed an uninterrupted single-process stream would have.
        positions = self.remaining_positions().tolist()
        return [(index, item_seed(self.seed, self.epoch, p)) for p, index in zip(positions, order)]

    def _loader(self) -> DataLoader:
        workers = self.num_workers > 0
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=_EpochItems(self),
            num_workers=self.num_workers,
            persistent_workers=workers,
            prefetch_factor=4 if workers else None,  # batches in flight per worker
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            # Workers' seeds come from this generator, not from the global RNG, so that
            # starting a loader mid-run (resume) leaves the training RNG stream untouched.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.loader is None:
            self.loader = self._loader()
        while True:
            # Both read the counters before the epoch's first batch: the flips and the
            # items (the sampler, at iter(self.loader)) cover the same remaining positions.
            flips = mirror_flips(self) if self.hflip else None
            for k, batch in enumerate(self.loader):
                self.batch += 1
                row = None if flips is None else flips[k]
                yield {key: _on_device(value, self.device, row) for key, value in batch.items()}
            self.epoch += 1
            self.batch = 0


class DatasetSource:
    """A map-style dataset whose items are ``{"image": uint8 (C, H, W), ...}`` (or, for
    translation data, ``{"A": uint8, "B": uint8}``): a ``DataSource`` (``data/source.py``)."""

    in_memory = False

    def __init__(self, dataset: Dataset, spec: DataSpec, hflip: bool = False) -> None:
        self.dataset = dataset
        self.spec = spec
        self.hflip = hflip

    def stream(
        self,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> LoaderStream:
        return LoaderStream(self.dataset, batch_size, seed, device, num_workers, shard, self.hflip)

    def images_at(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        items = [self.dataset[int(k)] for k in index]
        labels = torch.stack([item["label"] for item in items]) if "label" in items[0] else None
        return torch.stack([item["image"] for item in items]), labels

    def class_labels(self) -> torch.Tensor | None:
        # An image folder with class subfolders keeps its labels beside the file list.
        labels = getattr(self.dataset, "labels", None)
        return None if labels is None else torch.as_tensor(labels)

    def subset(self, n: int, seed: int) -> tuple[DatasetSource, dict[str, Part]]:
        """The same source streaming a seeded random ``n`` of its items (``subset.py``). A
        copy: a subclass keeps its kind and its held-out data (pix2pix's validation pairs
        are never limited, only the training pairs)."""
        index = choose(len(self.dataset), n, seed)
        limited = copy.copy(self)
        limited.dataset = SubsetItems(self.dataset, index)
        limited.spec = replace(self.spec, size=len(index))
        return limited, {"images": part_of(len(self.dataset), index, files_of(self.dataset))}
