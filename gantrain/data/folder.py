"""Any folder of images, flat or nested, resized and centre-cropped to a square.

Every file with an image extension that torchvision knows is used. When every image
sits in a first-level subfolder (the ``ImageFolder`` convention, ``root/cat/1.png``),
the subfolder names become class labels; otherwise the data is unlabelled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from gantrain.checks import PositiveInt
from gantrain.data.cache import cached_images
from gantrain.data.images import FallbackReader, OnBadFile, extensions_text, image_extensions, read, scan
from gantrain.data.loader import DatasetSource
from gantrain.data.memory import InMemorySource
from gantrain.data.spec import DataSpec
from gantrain.errors import OptionError


def find_images(root: Path) -> list[Path]:
    extensions = image_extensions()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


class ImageFiles(Dataset):
    def __init__(
        self,
        files: list[Path],
        labels: list[int] | None,
        image_size: int,
        channels: int,
        on_bad_file: OnBadFile = "skip",
    ) -> None:
        self.files = files
        self.labels = labels
        self.mode = {1: "L", 3: "RGB"}[channels]
        self.reader = FallbackReader(files, on_bad_file)
        from torchvision import transforms  # here: see images.image_extensions

        self.transform = transforms.Compose(
            [
                transforms.Resize(image_size, antialias=True),
                transforms.CenterCrop(image_size),
                transforms.PILToTensor(),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, used = self.reader(index, lambda path: read(path, self.mode))
        item = {"image": self.transform(image)}
        if self.labels is not None:  # the label of the file actually read
            item["label"] = torch.tensor(self.labels[used])
        return item


def folder(
    path: str,
    image_size: PositiveInt = 64,
    channels: PositiveInt = 3,
    on_bad_file: OnBadFile = "skip",
    cache: bool = False,
    cache_dir: str | None = None,
    hflip: bool = False,
) -> DatasetSource | InMemorySource:
    """``cache``: decode every image once into a memory-mapped file under ``cache_dir`` and
    train from memory (``data/cache.py``); otherwise decode in DataLoader workers each epoch.
    ``hflip``: mirror a random half of each batch, on the device (``loader.py``)."""
    if path is None or str(path) in ("", "???"):
        raise OptionError("path", "folder needs a path=<a folder of images>")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise OptionError("path", f"image folder {root} does not exist: set path to a folder of images")
    if channels not in (1, 3):
        raise OptionError("channels", f"channels={channels} is not supported: use 1 (grey) or 3 (RGB)")
    files = find_images(root)
    if not files:
        raise OptionError(
            "path",
            f"no images in {root} (looked for {extensions_text()}): set path to a folder that holds images",
        )
    files = scan(files, on_bad_file, str(root))
    top = [f.relative_to(root).parts for f in files]
    class_names: tuple[str, ...] = ()
    labels = None
    if all(len(parts) > 1 for parts in top):
        class_names = tuple(sorted({parts[0] for parts in top}))
        index = {name: k for k, name in enumerate(class_names)}
        labels = [index[parts[0]] for parts in top]
    dataset = ImageFiles(files, labels, image_size, channels, on_bad_file)
    spec_args = dict(
        channels=channels,
        image_size=image_size,
        num_classes=len(class_names),
        size=len(files),
        class_names=class_names,
        name=root.name,
    )
    if cache:
        settings = {"image_size": image_size, "channels": channels, "on_bad_file": on_bad_file}
        images, cached_labels = cached_images(dataset, files, settings, cache_dir, root.name, labels is not None)
        source = InMemorySource(images, cached_labels, DataSpec(**spec_args), hflip)
        source.files = files  # what a subset's record names (subset.py)
        return source
    return DatasetSource(dataset, DataSpec(**spec_args), hflip)
