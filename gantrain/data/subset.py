"""A seeded random subset of a dataset's images: training on N images of any dataset.

Small-data studies train on a random part of a dataset: Karras et al. (2020), "Training
Generative Adversarial Networks with Limited Data" (StyleGAN2-ADA), train on FFHQ subsets
of 1k to 140k images and compute FID "between 50k generated images and all available
training images, regardless of the subset actually used for training"; Zhao et al.
(2020), "Differentiable Augmentation for Data-Efficient GAN Training", on 10% and 20% of
CIFAR. A generator that memorised its N images must not score well, so only the training
stream is limited: ``source.subset`` returns a second source, and the full one stays for
the evaluator, the sample grids, validation and the tools (``build.py``).

The choice is the first ``n`` of a permutation of all positions, drawn by a CPU
``torch.Generator`` whose seed is a hash of (the run's seed, the part: "images", or a
domain "A"/"B"), and kept in ascending order. It is a function of (size, n, seed) alone:
the same run config picks the same images on every machine and again when resumed, and
the subsets of one seed are nested (the 500 images of n=500 are among the 1000 of
n=1000). It is not class-balanced: a small subset of labelled data may hold few or no
images of some class (the classes themselves, ``spec.num_classes``, stay those of the
full set, so conditional models keep every class).

Each source kind implements ``subset`` (``memory.py``, ``loader.py``, ``unpaired.py``);
they share ``choose``, ``SubsetItems`` and ``Part`` from here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from gantrain.errors import OptionError


@dataclass(frozen=True)
class Part:
    """What a subset keeps of one set of images (the dataset, or one domain of unpaired data)."""

    size: int  # images in the whole set
    indices: tuple[int, ...]  # the positions kept, ascending
    root: str | None = None  # the folder the files below are relative to (sources read from files)
    files: tuple[str, ...] | None = None  # the kept images' files, relative to root, POSIX separators

    def record(self) -> dict:
        """As ``RUN/data_subset.json`` writes it (``run_record.py``)."""
        record = {"size": self.size, "used": len(self.indices)}
        if self.files is not None:
            record["root"] = self.root
        record["indices"] = list(self.indices)
        if self.files is not None:
            record["files"] = list(self.files)
        return record


def subset_seed(seed: int, part: str) -> int:
    """The generator seed of ``part``'s choice: a hash of the run's seed and the part, so
    that it is unrelated to the epoch orders drawn from the same seed (``spec.py``) and
    the same on every platform and Python (``hash()`` of a str is salted per process)."""
    digest = hashlib.sha256(f"gantrain.data.subset/{seed}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: any manual_seed takes it


def choose(size: int, n: int, seed: int, part: str = "images") -> torch.Tensor:
    """The positions of the ``n`` of ``size`` items kept (all of them when ``n >= size``),
    ascending, int64."""
    generator = torch.Generator().manual_seed(subset_seed(seed, part))
    return torch.randperm(size, generator=generator)[: min(n, size)].sort().values


def part_of(size: int, index: torch.Tensor, files: Sequence[Path] | None) -> Part:
    """The record of ``index`` of a set of ``size`` images, read from ``files`` (or None)."""
    indices = tuple(index.tolist())
    if not files:
        return Part(size, indices)
    # Relative to the folder that holds them all: the record survives moving the dataset.
    root = os.path.commonpath([str(Path(f).parent) for f in files])
    return Part(size, indices, root, tuple(Path(os.path.relpath(files[k], root)).as_posix() for k in indices))


def files_of(dataset: object) -> list[Path] | None:
    """The files a dataset's items come from, in item order, when it knows them (folder
    and pix2pix datasets keep ``files``; CelebA lists ``image_files()``)."""
    files = getattr(dataset, "files", None)
    if files is None and hasattr(dataset, "image_files"):
        files = dataset.image_files()
    return None if files is None else list(files)


class SubsetItems(Dataset):
    """The items of ``dataset`` at ``index``, numbered 0..n-1. A stream indexes datasets
    with random augmentation (``seeded_items``) by ``(index, item_seed)``: the seed passes
    through unchanged, so an item's crop depends on its place in the epoch, as without a
    subset. An image folder's class ``labels`` are kept for the items kept.

    A file that passed the build-time scan but fails to decode later is replaced by the
    next readable file of the whole dataset (``images.py``, warned), which may lie outside
    the subset: such files are rare, and this keeps every dataset's reader unchanged."""

    def __init__(self, dataset: Dataset, index: torch.Tensor) -> None:
        self.dataset = dataset
        self.index = index.tolist()
        self.seeded_items = getattr(dataset, "seeded_items", False)
        labels = getattr(dataset, "labels", None)
        self.labels = None if labels is None else [labels[k] for k in self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        if isinstance(key, (tuple, list)):
            return self.dataset[(self.index[int(key[0])], int(key[1]))]
        return self.dataset[self.index[int(key)]]


def limit(source, n: int | None, seed: int) -> tuple[object, dict[str, Part] | None]:
    """``source`` limited to a seeded random ``n`` of its images (each domain's, for
    unpaired data) and what was kept, by part; the source itself and None when ``n`` is
    None or not below ``source.spec.size`` (nothing to leave out)."""
    if n is None or n >= source.spec.size:
        return source, None
    if n < 1:
        raise OptionError("max_images", f"max_images={n} must be at least 1: fix the value of max_images")
    return source.subset(n, seed)
