"""CycleGAN's unpaired layout: two folders of unrelated images, one per domain.

Layout (pytorch-CycleGAN-and-pix2pix's, and its dataset zips'):
``<path>/trainA/``, ``<path>/trainB/`` and, optionally, ``<path>/testA/``,
``<path>/testB/`` (horse2zebra: horses in A, zebras in B).

As in the reference's unaligned dataset, an epoch covers the larger domain: item i is
A[i % len(A)] with a B drawn at random, and A and B are cropped and flipped
independently (they are not pairs). Every random choice comes from the item seed the
stream hands out (``seeded_items``, see loader.py), so the B that meets a given A is
reproducible. Items are ``{"A", "B"}``, uint8 (3, S, S).

``cache=true`` decodes each training domain once into a memory-mapped array of
its images resized to load_size; the seeded crops and flips then run on it, giving the
same items as decoding (see paired.py).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from gantrain.checks import PositiveInt
from gantrain.data.cache import MappedArray, mapped_arrays
from gantrain.data.images import FallbackReader, OnBadFile, check_on_bad_file, extensions_text, scan
from gantrain.data.loader import DatasetSource
from gantrain.data.spec import DataSpec, to_unit_range
from gantrain.data.subset import Part, choose, part_of
from gantrain.data.translation_images import (
    check_sizes,
    dataset_folder,
    draw_crop_flip,
    list_images,
    load,
    load_rgb,
    split_key,
)
from gantrain.errors import OptionError


class UnpairedImages(Dataset):
    seeded_items = True  # the stream indexes items with (index, item_seed)

    def __init__(
        self,
        files_a: list[Path],
        files_b: list[Path],
        image_size: int,
        load_size: int,
        flip: bool,
        on_bad_file: OnBadFile = "skip",
    ) -> None:
        self.files_a, self.files_b = files_a, files_b
        self.read_a, self.read_b = FallbackReader(files_a, on_bad_file), FallbackReader(files_b, on_bad_file)
        self.image_size, self.load_size, self.flip = image_size, load_size, flip
        self.cache: dict[str, MappedArray] | None = None  # "A", "B": each domain at load_size (with cache)
        # The images of each domain used, by position in its files (``limited``); None: all of them.
        self.kept: dict[str, list[int]] | None = None

    def domain_size(self, domain: str) -> int:
        """How many images of domain "A" or "B" the items are drawn from."""
        if self.kept is not None:
            return len(self.kept[domain])
        return len(self.files_a if domain == "A" else self.files_b)

    def __len__(self) -> int:
        return max(self.domain_size("A"), self.domain_size("B"))

    def limited(self, index_a: list[int], index_b: list[int]) -> UnpairedImages:
        """A copy whose items draw only on these images of each domain (``data/subset.py``)."""
        limited = copy.copy(self)
        limited.kept = {"A": list(index_a), "B": list(index_b)}
        return limited

    def loaded(self, domain: str, index: int) -> torch.Tensor:
        """Image ``index`` of domain "A" or "B" (of those kept) resized to load_size (``load``),
        from the cache if there is one."""
        if self.kept is not None:
            index = self.kept[domain][index]
        if self.cache is not None:
            return self.cache[domain][index]
        reader = self.read_a if domain == "A" else self.read_b
        return load(reader(index, load_rgb)[0], self.load_size)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = split_key(key)
        generator = torch.Generator().manual_seed(seed)
        b_index = int(torch.randint(self.domain_size("B"), (), generator=generator))
        a = draw_crop_flip(self.load_size, self.image_size, self.flip, generator)(
            self.loaded("A", index % self.domain_size("A"))
        )
        b = draw_crop_flip(self.load_size, self.image_size, self.flip, generator)(self.loaded("B", b_index))
        return {"A": a, "B": b}

    def use_cache(self, cache_dir: str | None, name: str) -> None:
        """Read both domains from one-time caches (``cache=true``) from now on."""
        settings = {"layout": "unpaired", "load_size": self.load_size, "on_bad_file": self.read_a.on_bad_file}
        self.cache = {
            domain: mapped_arrays(
                _LoadedImages(reader, self.load_size), reader.files, settings, cache_dir, f"{name}{domain}", ("image",)
            )["image"]
            for domain, reader in (("A", self.read_a), ("B", self.read_b))
        }


class _LoadedImages(Dataset):
    """What the cache of a domain stores: each file (or its fallback) ``load``-ed."""

    def __init__(self, reader: FallbackReader, load_size: int) -> None:
        self.reader, self.load_size = reader, load_size

    def __len__(self) -> int:
        return len(self.reader.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": load(self.reader(index, load_rgb)[0], self.load_size)}


class UnpairedSource(DatasetSource):
    """Training images of both domains to stream, plus held-out ones for sample grids."""

    def __init__(self, dataset: UnpairedImages, validation: tuple[list[Path], list[Path]], spec: DataSpec) -> None:
        super().__init__(dataset, spec)
        self.validation = validation

    def subset(self, n: int, seed: int) -> tuple[UnpairedSource, dict[str, Part]]:
        """A seeded random ``n`` images of each training domain (all of a domain that has no
        more; ``data/subset.py``); the held-out images of the sample grids stay whole."""
        dataset = self.dataset
        index_a = choose(len(dataset.files_a), n, seed, "A")
        index_b = choose(len(dataset.files_b), n, seed, "B")
        limited = copy.copy(self)
        limited.dataset = dataset.limited(index_a.tolist(), index_b.tolist())
        extras = {**self.spec.extras, "size_a": len(index_a), "size_b": len(index_b)}
        limited.spec = replace(self.spec, size=len(limited.dataset), extras=extras)
        parts = {"A": part_of(len(dataset.files_a), index_a, dataset.files_a)}
        parts["B"] = part_of(len(dataset.files_b), index_b, dataset.files_b)
        return limited, parts

    def fixed_batch(self, n: int) -> dict[str, torch.Tensor]:
        """The first n images of each held-out domain (n capped by the smaller one),
        resized with no augmentation, as [-1, 1] floats on the CPU. Row k of A and row k
        of B are unrelated: they are just the same images every time."""
        if n < 1:
            raise ValueError(f"fixed_batch needs n >= 1, got {n}")
        files_a, files_b = self.validation
        n = min(n, len(files_a), len(files_b))
        size = self.spec.image_size
        return {
            name: to_unit_range(torch.stack([load(load_rgb(f), size) for f in files[:n]]))
            for name, files in (("A", files_a), ("B", files_b))
        }


def _domain_files(root: Path, split: str, on_bad_file: OnBadFile) -> tuple[list[Path], list[Path]]:
    folders = [root / f"{split}A", root / f"{split}B"]
    missing = [f.name + "/" for f in folders if not f.is_dir()]
    if missing:
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        there = f"it has {', '.join(present)}" if present else "it has no subfolders"
        raise OptionError(
            "path",
            f"{root} has no {' or '.join(missing)} ({there}): a CycleGAN dataset needs "
            f"{root}/{split}A/ and {root}/{split}B/; set path or split",
            also=("split",),
        )
    files = (list_images(folders[0]), list_images(folders[1]))
    for folder, found in zip(folders, files):
        if not found:
            raise OptionError(
                "path",
                f"no images in {folder}/ (looked for {extensions_text()}): put the domain's "
                f"images there, or set path to the dataset folder",
            )
    return scan(files[0], on_bad_file, f"{folders[0]}/"), scan(files[1], on_bad_file, f"{folders[1]}/")


def unpaired_folder(
    path: str,
    split: str = "train",
    image_size: PositiveInt = 256,
    load_size: PositiveInt = 286,
    flip: bool = True,
    on_bad_file: OnBadFile = "skip",
    cache: bool = False,
    cache_dir: str | None = None,
) -> UnpairedSource:
    """Any CycleGAN dataset (horse2zebra, monet2photo, ...). ``cache``: decode the training
    images once into memory-mapped arrays under ``cache_dir``."""
    root = dataset_folder(path, "unpaired_folder", "trainA/ and trainB/", "<path>/{trainA,trainB,testA,testB}/")
    check_sizes(image_size, load_size)
    check_on_bad_file(on_bad_file)
    files_a, files_b = _domain_files(root, split, on_bad_file)
    # Sample grids show held-out images when the set has some (testA/ and testB/).
    test = (
        _domain_files(root, "test", on_bad_file)
        if split != "test" and (root / "testA").is_dir() and (root / "testB").is_dir()
        else ([], [])
    )
    validation = test if test[0] and test[1] else (files_a, files_b)
    dataset = UnpairedImages(files_a, files_b, image_size, load_size, flip, on_bad_file)
    if cache:  # the held-out images only make sample grids: not worth a cache
        dataset.use_cache(cache_dir, f"{root.name}-{split}")
    spec = DataSpec(
        channels=3,
        image_size=image_size,
        size=len(dataset),
        pairing="unpaired",
        name=root.name,
        extras={"size_a": len(files_a), "size_b": len(files_b)},
    )
    return UnpairedSource(dataset, validation, spec)
