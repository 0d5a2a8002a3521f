"""CelebA through torchvision, aligned faces centre-cropped and resized (64x64 by default).

Layout (torchvision's): ``<root>/celeba/img_align_celeba/*.jpg`` plus the text files
``list_attr_celeba.txt``, ``list_eval_partition.txt``, ``identity_CelebA.txt``,
``list_bbox_celeba.txt`` and ``list_landmarks_align_celeba.txt``. The 40 binary
attributes reach the batch as ``batch["attrs"]`` (0/1), named in ``DataSpec``; chosen
ones (``label_attrs``) also make ``batch["label"]`` for conditional models.

Every item is deterministic (centre crop, resize), so ``cache=true`` decodes the
split once into a memory-mapped file (``cache.py``) and trains from memory; the
attributes and labels come from the annotation table, which costs no decoding.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from gantrain.checks import PositiveInt
from gantrain.data.cache import cached_images
from gantrain.data.loader import DatasetSource
from gantrain.data.memory import InMemorySource
from gantrain.data.spec import DataSpec
from gantrain.errors import OptionError, UserError

_FILES = (
    "list_attr_celeba.txt",
    "list_eval_partition.txt",
    "identity_CelebA.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
)


class CelebAImages(Dataset):
    def __init__(self, root: str, split: str, image_size: int, crop_size: int) -> None:
        from torchvision import transforms  # here: see celeba_files.py

        from gantrain.data.celeba_files import CelebAFiles

        self.faces = CelebAFiles(root, split=split, target_type="attr", download=False)
        self.split, self.crop_size = split, crop_size
        self.label_columns: list[int] = []  # attributes that make the class label
        self.transform = transforms.Compose(
            [
                transforms.CenterCrop(crop_size),
                transforms.Resize(image_size, antialias=True),
                transforms.PILToTensor(),
            ]
        )

    def __len__(self) -> int:
        return len(self.faces)

    def attribute_table(self) -> torch.Tensor:
        """Every image's 40 attributes as 0/1, without decoding any image."""
        return self.faces.attr

    def image_files(self) -> list[Path]:
        """The split's image files, in item order (torchvision's own path scheme)."""
        folder = Path(self.faces.root) / self.faces.base_folder / "img_align_celeba"
        return [folder / name for name in self.faces.filename]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, attrs = self.faces[index]
        item = {"image": self.transform(image.convert("RGB")), "attrs": attrs.to(torch.float32)}
        if self.label_columns:
            item["label"] = attribute_class(attrs[self.label_columns])
        return item


def attribute_class(bits: torch.Tensor) -> torch.Tensor:
    """Chosen 0/1 attributes -> one class: the attributes read as a binary number, the
    first one most significant (Male, Smiling: 0 neither, 1 smiling, 2 male, 3 both).
    ``bits``: one image's (k,) or a table's (N, k), giving one class or N."""
    weights = 2 ** torch.arange(bits.shape[-1] - 1, -1, -1)
    return (bits.long() * weights).sum(-1)


def attribute_class_names(names: list[str]) -> tuple[str, ...]:
    return tuple(
        " ".join(("+" if (k >> (len(names) - 1 - i)) & 1 else "-") + name for i, name in enumerate(names))
        for k in range(2 ** len(names))
    )


def _label_columns(attribute_names: list[str], label_attrs: list[str]) -> list[int]:
    unknown = [name for name in label_attrs if name not in attribute_names]
    if unknown or len(set(label_attrs)) != len(label_attrs) or len(label_attrs) > 8:
        problem = f"{', '.join(unknown)} not among the CelebA attributes" if unknown else "repeated or more than 8"
        raise OptionError(
            "label_attrs", f"label_attrs: {problem}; choose up to 8 distinct names from {', '.join(attribute_names)}"
        )
    return [attribute_names.index(name) for name in label_attrs]


class CachedCelebA(InMemorySource):
    """CelebA decoded once (``cache=true``). The file dataset stays, for the
    annotations that tools read (``dataset.attribute_table()``), never for images."""

    def __init__(self, dataset: CelebAImages, spec: DataSpec, cache_dir: str | None, hflip: bool) -> None:
        settings = {"image_size": spec.image_size, "crop_size": dataset.crop_size}
        images, _ = cached_images(
            dataset, dataset.image_files(), settings, cache_dir, f"celeba-{dataset.split}", labelled=False
        )
        table = dataset.attribute_table()
        labels = attribute_class(table[:, dataset.label_columns]) if dataset.label_columns else None
        super().__init__(images, labels, spec, hflip, extras={"attrs": table.to(torch.float32)})
        self.dataset = dataset
        self.files = dataset.image_files()


def celeba(
    root: str = "data",
    split: str = "train",
    image_size: PositiveInt = 64,
    crop_size: PositiveInt = 178,
    label_attrs: list[str] | None = None,
    cache: bool = False,
    cache_dir: str | None = None,
    hflip: bool = False,
) -> DatasetSource | CachedCelebA:
    """``label_attrs``: attributes whose 2^k on/off combinations become class labels,
    for conditional models (``[Smiling]``: 2 classes, ``[Male, Smiling]``: 4).
    ``cache``: decode the split once into a memory-mapped file under ``cache_dir``.
    ``hflip``: mirror a random half of each batch, on the device (faces are symmetric
    enough; attributes such as Smiling survive a mirror)."""
    base = Path(root) / "celeba"
    missing = [name for name in _FILES if not (base / name).is_file()]
    if not (base / "img_align_celeba").is_dir():
        missing.insert(0, "img_align_celeba/")
    if missing:
        raise OptionError(
            "root",
            f"CelebA not found in {base}/ (missing {', '.join(missing)}): download "
            f"the aligned images and annotation files there, or set root to the "
            f"folder that holds celeba/",
        )
    if split not in ("train", "valid", "test", "all"):
        raise OptionError("split", f"split={split!r} is not known to CelebA: use train, valid, test or all")
    try:
        dataset = CelebAImages(root, split, image_size, crop_size)
    except (ValueError, IndexError, KeyError) as exc:
        raise UserError(
            f"could not parse the CelebA annotation files in {base}/ ({exc}); re-extract them from the original archive"
        ) from None
    if len(dataset) == 0:
        raise UserError(f"CelebA split {split!r} in {base}/ is empty: check list_eval_partition.txt")
    attribute_names = [name for name in dataset.faces.attr_names if name][:40]
    dataset.label_columns = _label_columns(attribute_names, list(label_attrs or []))
    class_names = attribute_class_names(list(label_attrs)) if dataset.label_columns else ()
    spec = DataSpec(
        channels=3,
        image_size=image_size,
        num_classes=len(class_names),
        size=len(dataset),
        class_names=class_names,
        attribute_names=tuple(attribute_names),
        name="celeba",
    )
    if cache:
        return CachedCelebA(dataset, spec, cache_dir, hflip)
    return DatasetSource(dataset, spec, hflip)
