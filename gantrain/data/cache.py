"""A one-time decode cache for folder datasets (``data.cache=true``).

Decoding and resizing JPEGs costs more than a small GAN's whole training step. When
every item is deterministic (a folder dataset resizes and centre-crops; no random
augmentation), the decoded uint8 images can be kept: the first run decodes each file
once into a ``.npy`` array (written under a temporary name, then renamed, so a crash
never leaves half a cache), and every later epoch and run maps that file into memory
and serves batches by indexing it, like the MNIST family (on a GPU the array is copied
to the device once). The key is a hash of every file's path, size and modification
time plus the decode settings: change a file, or the image size, and the cache is
rebuilt rather than served stale.
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

log = logging.getLogger("gantrain")
CACHE_VERSION = 1  # bump when the decoding itself changes


def cache_key(files: list[Path], settings: dict) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} {sorted(settings.items())}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _decode_into(dataset: Dataset, images: np.ndarray, labels: np.ndarray | None) -> None:
    """Every item of ``dataset`` into the arrays, in order; large sets decode in worker processes."""
    workers = min(8, os.cpu_count() or 1) if len(dataset) >= 2000 else 0
    loader = DataLoader(dataset, batch_size=256, shuffle=False, num_workers=workers)
    start = 0
    for batch in loader:
        n = len(batch["image"])
        images[start:start + n] = batch["image"].numpy()
        if labels is not None:
            labels[start:start + n] = batch["label"].numpy()
        start += n


def cached_images(dataset: Dataset, files: list[Path], settings: dict, cache_dir: str | Path, name: str,
                  labelled: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The dataset's items as one (N, C, H, W) uint8 tensor backed by a memory-mapped
    cache file (and its labels), decoding only if the cache does not hold them yet."""
    from gantrain.atomic import atomic_write

    folder = Path(cache_dir).expanduser()
    key = cache_key(files, settings)
    image_path, label_path = folder / f"{name}_{key}_images.npy", folder / f"{name}_{key}_labels.npy"
    if not image_path.is_file() or (labelled and not label_path.is_file()):
        first = dataset[0]["image"]
        folder.mkdir(parents=True, exist_ok=True)
        log.info("decoding %d images once into %s (data.cache=true)", len(dataset), image_path)
        fd, tmp = tempfile.mkstemp(prefix=f".{image_path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(dataset), *first.shape))
            labels = np.zeros(len(dataset), dtype=np.int64) if labelled else None
            _decode_into(dataset, images, labels)
            images.flush()
            del images
            if labels is not None:  # labels first: the image file is the sign that the cache is complete
                atomic_write(label_path, lambda f: np.save(f, labels))
            os.replace(tmp, image_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    # Copy-on-write mapping: a writable array for torch, and the file is never modified.
    images = torch.from_numpy(np.load(image_path, mmap_mode="c"))
    labels = torch.from_numpy(np.load(label_path)) if labelled else None
    if len(images) != len(files):
        raise RuntimeError(f"cache {image_path} holds {len(images)} images for {len(files)} files")
    return images, labels
