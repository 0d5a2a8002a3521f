"""A one-time decode cache for file datasets (``cache=true``): folders, CelebA,
pix2pix and CycleGAN folders.

Decoding and resizing JPEGs costs more than a small GAN's whole training step. When
every item is deterministic (a folder dataset resizes and centre-crops; no random
augmentation), the decoded uint8 images can be kept: the first run decodes each file
once into a ``.npy`` array (written under a temporary name, then renamed, so a crash
never leaves half a cache), and every later epoch and run maps that file into memory
and serves batches by indexing it, like the MNIST family (on a GPU the array is copied
to the device once). The key is a hash of every file's path, size and modification
time plus the decode settings: change a file, or the image size, and the cache is
rebuilt rather than served stale.

Datasets with random crops (pix2pix, CycleGAN) cache what comes before the randomness,
the images resized to ``load_size``, and read them through ``MappedArray``; the seeded
crop and flip then run on the cached pixels exactly as on freshly decoded ones.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gantrain.errors import OptionError

log = logging.getLogger("gantrain")
CACHE_VERSION = 1  # bump when the decoding itself changes
# A field's file is <name>_<key>_<stem>.npy; the first caches named only these two.
FILE_STEMS = {"image": "images", "label": "labels"}


def cache_folder(cache_dir: str | Path | None) -> Path:
    """``cache_dir``, checked: the cache needs somewhere to go."""
    if not cache_dir:
        raise OptionError("cache_dir", "cache=true needs cache_dir: a folder for the decoded images", also=("cache",))
    return Path(cache_dir).expanduser()


def cache_key(files: list[Path], settings: dict) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} {sorted(settings.items())}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _decode_into(dataset: Dataset, arrays: dict[str, np.ndarray]) -> None:
    """Every item of ``dataset`` into the arrays (one per item field), in order; large sets
    decode in worker processes."""
    workers = min(8, os.cpu_count() or 1) if len(dataset) >= 2000 else 0
    loader = DataLoader(dataset, batch_size=256, shuffle=False, num_workers=workers)
    start = 0
    for batch in loader:
        n = len(batch[next(iter(arrays))])
        for field, array in arrays.items():
            array[start : start + n] = batch[field].numpy()
        start += n


def _build(dataset: Dataset, paths: dict[str, Path]) -> None:
    """Decode every item into temporary files next to ``paths``, then rename them into place,
    the first field's file last: its presence is the sign that the cache is complete."""
    first = dataset[0]
    folder = next(iter(paths.values())).parent
    folder.mkdir(parents=True, exist_ok=True)
    log.info("decoding %d items once into %s (cache=true)", len(dataset), next(iter(paths.values())))
    temporary = {}
    try:
        for field, path in paths.items():
            fd, temporary[field] = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
        arrays = {
            field: np.lib.format.open_memmap(
                temporary[field], mode="w+", dtype=first[field].numpy().dtype, shape=(len(dataset), *first[field].shape)
            )
            for field in paths
        }
        _decode_into(dataset, arrays)
        for array in arrays.values():
            array.flush()
        del arrays
        for field in reversed(list(paths)):
            os.replace(temporary.pop(field), paths[field])
    finally:
        for tmp in temporary.values():  # only after a failure
            Path(tmp).unlink(missing_ok=True)


def cache_arrays(
    dataset: Dataset, files: list[Path], settings: dict, cache_dir: str | Path, name: str, fields: tuple[str, ...]
) -> dict[str, Path]:
    """The cache files holding ``fields`` of every item of ``dataset`` (as .npy arrays,
    item k at row k), decoding only if the cache does not hold them yet. ``files`` and
    ``settings`` make the key: every file the items depend on, every decode option."""
    folder = cache_folder(cache_dir)
    key = cache_key(files, settings)
    paths = {field: folder / f"{name}_{key}_{FILE_STEMS.get(field, field)}.npy" for field in fields}
    if not all(path.is_file() for path in paths.values()):
        _build(dataset, paths)
    return paths


def _check_length(path: Path, array: np.ndarray, length: int) -> None:
    if len(array) != length:
        raise RuntimeError(f"cache {path} holds {len(array)} items for a dataset of {length}: delete it")


def cached_images(
    dataset: Dataset, files: list[Path], settings: dict, cache_dir: str | Path, name: str, labelled: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The dataset's items as one (N, C, H, W) uint8 tensor backed by a memory-mapped
    cache file (and its labels), decoding only if the cache does not hold them yet."""
    paths = cache_arrays(dataset, files, settings, cache_dir, name, ("image", "label") if labelled else ("image",))
    # Copy-on-write mapping: a writable array for torch, and the file is never modified.
    arrays = {field: np.load(path, mmap_mode="c") for field, path in paths.items()}
    for field, array in arrays.items():
        _check_length(paths[field], array, len(dataset))
    labels = torch.from_numpy(np.array(arrays["label"])) if labelled else None
    return torch.from_numpy(arrays["image"]), labels


class MappedArray:
    """One cache file for a dataset to read item by item (``array[k]``: a uint8 tensor).
    Mapped read-only on first use in each process: a dataset holding one pickles to a
    worker process as a path, never as the array's bytes."""

    def __init__(self, path: Path, length: int) -> None:
        self.path = Path(path)
        self._array: np.ndarray | None = np.load(self.path, mmap_mode="r")
        _check_length(self.path, self._array, length)

    def __len__(self) -> int:
        return len(self._mapped())

    def _mapped(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self._mapped()[index]))  # a copy: torch wants writable memory

    def __getstate__(self) -> dict:
        return {"path": self.path, "_array": None}


def mapped_arrays(
    dataset: Dataset, files: list[Path], settings: dict, cache_dir: str | Path, name: str, fields: tuple[str, ...]
) -> dict[str, MappedArray]:
    """``cache_arrays``, each file mapped for a dataset to read item by item."""
    paths = cache_arrays(dataset, files, settings, cache_dir, name, fields)
    return {field: MappedArray(path, len(dataset)) for field, path in paths.items()}
