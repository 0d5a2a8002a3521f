"""pix2pix's "aligned" layout: every file holds one pair side by side, A left, B right.

Layout (pytorch-CycleGAN-and-pix2pix's, and its dataset archives'):
``<path>/<split>/*.jpg`` with splits such as ``train/``, ``val/``, ``test/``; each half
of an image is half its width (facades: 512x256 files, two 256x256 halves). The CMP
facades archive unpacks to ``<root>/facades/{train,val,test}/N.jpg`` with the photo on
the left and the label map on the right.

``direction`` says which half the model sees: AtoB maps the left half to the right,
BtoA the right to the left. Items are ``{"A": input, "B": target}`` (uint8, 3 x S x S)
after that swap, so models never look at ``direction``.

Training augmentation is the reference's ``resize_and_crop`` plus a horizontal flip:
both halves are resized to load_size x load_size, cropped to image_size x image_size at
one random position and flipped (or not) together, so the pixels of a pair stay
aligned. The randomness comes from the item seed the stream hands out
(``seeded_items``, see loader.py). Validation images are resized straight to
image_size, with no crop and no flip.

``cache=true`` decodes the training files once into memory-mapped arrays of
their halves resized to load_size (``load``, the deterministic part), left and right
as in the files, so both directions share one cache. The seeded crop and flip then run
on those arrays: an item is bit-identical with or without the cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from gantrain.checks import PositiveInt
from gantrain.data.cache import MappedArray, mapped_arrays
from gantrain.data.images import FallbackReader, OnBadFile, check_on_bad_file, extensions_text, scan
from gantrain.data.loader import DatasetSource
from gantrain.data.spec import DataSpec, to_unit_range
from gantrain.data.translation_images import (
    check_sizes,
    dataset_folder,
    draw_crop_flip,
    list_images,
    load,
    load_rgb,
    split_key,
)
from gantrain.errors import OptionError, UserError

DIRECTIONS = ("AtoB", "BtoA")
T = TypeVar("T")


def stack_items(dataset: Dataset, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """Items as one batch, converted like a stream's batches but kept on the CPU."""
    items = [dataset[k] for k in indices]
    return {key: to_unit_range(torch.stack([item[key] for item in items])) for key in items[0]}


def split_files(root: Path, split: str, option: str, on_bad_file: OnBadFile = "skip") -> list[Path]:
    """The images of ``root/split``, or an error about ``option`` (the parameter that chose
    ``split``) naming the splits that are there."""
    folder = root / split
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        there = f"it has {', '.join(present)}" if present else "it has no subfolders"
        raise OptionError(
            option,
            f"{option}={split!r} but there is no {folder}/ ({there}): set {option} to one of the folders in {root}",
        )
    files = list_images(folder)
    if not files:
        raise UserError(
            f"no images in {folder}/ (looked for {extensions_text()}): put the dataset's "
            f"images there, or point at the folder that holds them"
        )
    return scan(files, on_bad_file, f"{folder}/")


def check_even_widths(files: list[Path]) -> None:
    """Every file must split into two equal halves. PIL reads the size from the header
    without decoding, so this costs one small read per file, once, before training
    (inside a worker process the error would come wrapped in a traceback)."""
    for path in files:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"cannot read {path} ({exc}): remove or replace the file") from None
        if width % 2:
            raise UserError(
                f"{path} is {width}x{height}: A|B images must have an even width (A the "
                f"left half, B the right one); re-export or remove the file"
            )


class AlignedPairs(Dataset):
    """Items ``{"A", "B"}`` of uint8 (3, S, S) from A|B files, after ``direction``."""

    def __init__(
        self,
        files: list[Path],
        direction: str,
        image_size: int,
        load_size: int,
        flip: bool,
        augment: bool,
        on_bad_file: OnBadFile = "skip",
    ) -> None:
        self.files = files
        self.reader = FallbackReader(files, on_bad_file)
        self.direction = direction
        self.image_size, self.load_size, self.flip = image_size, load_size, flip
        self.augment = augment
        # Only a dataset that draws random crops asks the stream for item seeds.
        self.seeded_items = augment
        self.cache: dict[str, MappedArray] | None = None  # "left", "right" at load_size (with cache)

    def __len__(self) -> int:
        return len(self.files)

    def sides(self, index: int) -> tuple[Image.Image, Image.Image]:
        """(left, right) halves of file ``index``."""
        image, used = self.reader(index, load_rgb)
        path = self.files[used]
        width, height = image.size
        if width % 2:  # a file replaced after the check at build time
            raise UserError(f"{path} is {width}x{height}: A|B images must have an even width")
        return image.crop((0, 0, width // 2, height)), image.crop((width // 2, 0, width, height))

    def halves(self, index: int) -> tuple[Image.Image, Image.Image]:
        """(A, B) of file ``index``: (left, right) for AtoB, (right, left) for BtoA."""
        return self._directed(self.sides(index))

    def _directed(self, sides: tuple[T, T]) -> tuple[T, T]:
        return sides if self.direction == "AtoB" else (sides[1], sides[0])

    def loaded_halves(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of file ``index`` resized to load_size (``load``), from the cache if there is one."""
        if self.cache is not None:
            return self._directed((self.cache["left"][index], self.cache["right"][index]))
        return self._directed(tuple(load(side, self.load_size) for side in self.sides(index)))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = split_key(key)
        if not self.augment:
            a, b = self.halves(index)
            return {"A": load(a, self.image_size), "B": load(b, self.image_size)}
        a, b = self.loaded_halves(index)
        draw = draw_crop_flip(self.load_size, self.image_size, self.flip, torch.Generator().manual_seed(seed))
        return {"A": draw(a), "B": draw(b)}

    def use_cache(self, cache_dir: str | None, name: str) -> None:
        """Read the training halves from a one-time cache (``cache=true``) from now on."""
        settings = {"layout": "aligned", "load_size": self.load_size, "on_bad_file": self.reader.on_bad_file}
        self.cache = mapped_arrays(_LoadedSides(self), self.files, settings, cache_dir, name, ("left", "right"))


class _LoadedSides(Dataset):
    """What the cache of an aligned dataset stores: each file's halves, ``load``-ed."""

    def __init__(self, pairs: AlignedPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        left, right = self.pairs.sides(index)
        return {"left": load(left, self.pairs.load_size), "right": load(right, self.pairs.load_size)}


class PairedSource(DatasetSource):
    """Training pairs to stream, plus a validation split for sample grids and metrics."""

    def __init__(self, dataset: AlignedPairs, validation: AlignedPairs, spec: DataSpec) -> None:
        super().__init__(dataset, spec)
        self.validation = validation

    def fixed_batch(self, n: int) -> dict[str, torch.Tensor]:
        """The first n validation pairs (fewer if the split is smaller), resized, as
        [-1, 1] floats on the CPU: the same inputs every time, for sample grids."""
        if n < 1:
            raise ValueError(f"fixed_batch needs n >= 1, got {n}")
        return stack_items(self.validation, range(min(n, len(self.validation))))

    def validation_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """The whole validation split in order, batch_size pairs at a time (the last
        batch may be smaller), like ``fixed_batch``."""
        if batch_size < 1:
            raise ValueError(f"validation_batches needs batch_size >= 1, got {batch_size}")
        for start in range(0, len(self.validation), batch_size):
            yield stack_items(self.validation, range(start, min(start + batch_size, len(self.validation))))


def _aligned(
    root: Path,
    split: str,
    direction: str,
    image_size: int,
    load_size: int,
    flip: bool,
    val_split: str | None,
    name: str,
    on_bad_file: OnBadFile,
    cache: bool = False,
    cache_dir: str | None = None,
) -> PairedSource:
    if direction not in DIRECTIONS:
        raise OptionError(
            "direction",
            f"direction={direction!r} is not known: use AtoB (left half -> "
            f"right half) or BtoA (right half -> left half)",
        )
    check_sizes(image_size, load_size)
    check_on_bad_file(on_bad_file)
    train_files = split_files(root, split, "split", on_bad_file)
    if val_split is None:  # the reference's held-out split, else the training images
        val_split = next((s for s in ("val", "test") if (root / s).is_dir()), split)
    val_files = train_files if val_split == split else split_files(root, val_split, "val_split", on_bad_file)
    check_even_widths(train_files)
    if val_files is not train_files:
        check_even_widths(val_files)
    dataset = AlignedPairs(train_files, direction, image_size, load_size, flip, augment=True, on_bad_file=on_bad_file)
    if cache:  # the validation split is read once per evaluation: not worth a cache
        dataset.use_cache(cache_dir, f"{name}-{split}")
    validation = AlignedPairs(
        val_files, direction, image_size, image_size, False, augment=False, on_bad_file=on_bad_file
    )
    spec = DataSpec(
        channels=3,
        image_size=image_size,
        size=len(train_files),
        pairing="paired",
        name=name,
        extras={"direction": direction, "val_split": val_split},
    )
    return PairedSource(dataset, validation, spec)


def paired_folder(
    path: str,
    split: str = "train",
    direction: str = "AtoB",
    image_size: PositiveInt = 256,
    load_size: PositiveInt = 286,
    flip: bool = True,
    val_split: str | None = None,
    on_bad_file: OnBadFile = "skip",
    cache: bool = False,
    cache_dir: str | None = None,
) -> PairedSource:
    """Any dataset in the aligned layout (edges2shoes, maps, cityscapes, night2day, ...).
    ``cache``: decode the training files once into memory-mapped arrays under ``cache_dir``."""
    root = dataset_folder(
        path, "paired_folder", "train/, val/, ...", f"<dataset>/{split}/*.jpg, each image an A|B pair side by side"
    )
    return _aligned(
        root, split, direction, image_size, load_size, flip, val_split, root.name, on_bad_file, cache, cache_dir
    )


def facades(
    root: str = "data",
    split: str = "train",
    direction: str = "BtoA",
    image_size: PositiveInt = 256,
    load_size: PositiveInt = 286,
    flip: bool = True,
    on_bad_file: OnBadFile = "skip",
    cache: bool = False,
    cache_dir: str | None = None,
) -> PairedSource:
    """CMP facades as the pix2pix archive unpacks it. The photo is the left half and the
    label map the right one, so BtoA (the default, as in the reference's facades
    scripts) learns label map -> photo. ``cache`` as for ``paired_folder``."""
    base = Path(root).expanduser() / "facades"
    if not base.is_dir():
        # The download command names its folder through GANTRAIN_DATA, not --root: the config
        # layer rewrites every whole-word "root" here into its key path.
        raise OptionError(
            "root",
            f"facades not found in {base}/ (expected {base}/train/*.jpg): run "
            f"GANTRAIN_DATA={root} python scripts/download_pix2pix.py facades, or set root to "
            f"the folder that holds facades/",
        )
    return _aligned(base, split, direction, image_size, load_size, flip, None, "facades", on_bad_file, cache, cache_dir)
