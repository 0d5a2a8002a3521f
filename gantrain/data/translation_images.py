"""What the translators' folder datasets (``paired.py``, ``unpaired.py``) share: the image
files of a folder, the resize to load_size (bicubic, aspect ratio ignored, as in
pytorch-CycleGAN-and-pix2pix's ``resize_and_crop``), one seeded draw of the crop and flip
(``CropFlip``), applied alike to both sides of a pair, and the checks of their options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from gantrain.data.images import image_extensions, read
from gantrain.errors import OptionError


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in sorted name order."""
    extensions = image_extensions()
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def load_rgb(path: Path) -> Image.Image:
    return read(path, "RGB")  # some sets mix in grey, palette or RGBA images


def square(image: Image.Image, size: int) -> Image.Image:
    """Resized to size x size, ignoring the aspect ratio (as the reference does);
    bicubic, the reference's interpolation."""
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BICUBIC)


def load(image: Image.Image, load_size: int) -> torch.Tensor:
    """``image`` resized to load_size, uint8 (3, S, S): the deterministic first step of the
    training augmentation, what the cache stores (so cached and decoded items share this
    code), and the whole of the test-time transform at image_size."""
    from torchvision.transforms.functional import pil_to_tensor  # here: see images.image_extensions

    return pil_to_tensor(square(image, load_size))


@dataclass(frozen=True)
class CropFlip:
    """One draw of the training augmentation: resize to load_size, crop image_size at
    (x, y), maybe mirror. Applying one draw to both halves keeps a pair aligned."""

    load_size: int
    image_size: int
    x: int = 0
    y: int = 0
    flipped: bool = False

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """A decoded image, or its ``load`` (from the cache): the crop and the mirror only
        move uint8 pixels, so both give the same item."""
        if isinstance(image, Image.Image):
            image = load(image, self.load_size)
        image = image[:, self.y : self.y + self.image_size, self.x : self.x + self.image_size]
        return image.flip(-1) if self.flipped else image.contiguous()


def draw_crop_flip(load_size: int, image_size: int, flip: bool, generator: torch.Generator) -> CropFlip:
    # Always the same draws, whatever the options, so that switching flip off changes
    # nothing else (an unpaired item draws B's crop after A's from one generator).
    x, y = torch.randint(0, load_size - image_size + 1, (2,), generator=generator).tolist()
    flipped = bool(torch.rand((), generator=generator) < 0.5)
    return CropFlip(load_size, image_size, x, y, flipped and flip)


def split_key(key: int | tuple[int, int]) -> tuple[int, int]:
    """A stream indexes seeded datasets with ``(index, item_seed)``; a plain index (as in
    ``dataset[3]``) is its own seed, so direct reads are reproducible too."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), int(key)


def check_sizes(image_size: int, load_size: int) -> None:
    if image_size < 1:
        raise OptionError("image_size", f"image_size={image_size} must be at least 1: fix image_size")
    if load_size < image_size:
        raise OptionError(
            "load_size",
            f"load_size={load_size} is smaller than image_size={image_size}: the "
            f"random crop needs load_size >= image_size (pix2pix: 286 for 256; equal "
            f"sizes mean no crop)",
            also=("image_size",),
        )


def dataset_folder(path: str | None, kind: str, holds: str, layout: str) -> Path:
    """``path`` of a folder dataset (``kind``: its builder), checked: given, and an existing
    folder. (The messages use the word only for the parameter: the config layer puts its
    key path in place of every whole-word "path".)"""
    if path is None or str(path) in ("", "???"):
        raise OptionError("path", f"{kind} needs a path=<the folder that holds {holds}>")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise OptionError("path", f"dataset folder {root} does not exist: set path to a folder laid out as {layout}")
    return root
