"""Tiny datasets written in the exact on-disk layouts the real loaders read."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRS = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """The IDX3 format of LeCun's MNIST files: magic 2051, count, rows, cols, pixels."""
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, *images.shape))
        f.write(images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 10, seed: int = 0) -> np.ndarray:
    """``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``; returns the train images."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    write_idx_images(raw / "train-images-idx3-ubyte", train)
    write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx_images(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return train


def write_celeba(root: Path, n: int = 12, seed: int = 0) -> np.ndarray:
    """torchvision's CelebA layout: ``<root>/celeba/img_align_celeba/*.jpg`` and the five
    annotation files, in the original whitespace-separated formats. Returns the attrs (0/1)."""
    rng = np.random.default_rng(seed)
    base = root / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    names = [f"{k + 1:06d}.jpg" for k in range(n)]
    for name in names:  # aligned CelebA images are 178 wide, 218 high
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(base / "img_align_celeba" / name)
    attrs = rng.integers(0, 2, (n, 40))
    rows = [f"{name} " + " ".join("1" if a else "-1" for a in row) for name, row in zip(names, attrs)]
    (base / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(CELEBA_ATTRS) + "\n" + "\n".join(rows) + "\n")
    # Partition: 0 train, 1 valid, 2 test. The first two thirds train.
    split = [0 if k < 2 * n // 3 else (1 if k < 5 * n // 6 else 2) for k in range(n)]
    (base / "list_eval_partition.txt").write_text("".join(f"{nm} {s}\n" for nm, s in zip(names, split)))
    (base / "identity_CelebA.txt").write_text("".join(f"{nm} {k + 1}\n" for k, nm in enumerate(names)))
    (base / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{nm} 95 71 226 313\n" for nm in names)
    )
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
        f"rightmouth_x rightmouth_y\n" + "".join(f"{nm} 69 109 106 113 77 142 73 152 108 154\n" for nm in names)
    )
    return attrs


def write_folder(root: Path, layout: dict[str, int], size=(40, 30), mode: str = "RGB", seed: int = 0) -> None:
    """Images at the given relative folders: {"": 3, "a/b": 2} puts 3 in root, 2 in root/a/b."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    for sub, count in layout.items():
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(count):
            shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"img{k}.png")


def paired_target(a: np.ndarray) -> np.ndarray:
    """The B half that ``write_paired`` puts next to A: A's colour channels rotated
    (B's red is A's green, ...). Every resize, crop and flip acts on each channel alike,
    so after any augmentation applied to both halves B still equals this of A, exactly."""
    return np.roll(a, -1, axis=-1)


def write_paired(
    root: Path, split_counts: dict[str, int], size=(64, 32), seed: int = 0, ext: str = "png"
) -> dict[str, np.ndarray]:
    """pix2pix's aligned layout: ``<root>/<split>/<k>.<ext>``, each file ``size`` (width,
    height) with A (random noise) on the left half and ``paired_target(A)`` on the right.
    Returns the A halves of each split, (n, height, width // 2, 3), in file name order."""
    rng = np.random.default_rng(seed)
    width, height = size
    halves = {}
    for split, count in split_counts.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (count, height, width // 2, 3), dtype=np.uint8)
        for k in range(count):
            pair = np.concatenate([a[k], paired_target(a[k])], axis=1)
            if width % 2:  # an odd width: one extra column on the right
                pair = np.concatenate([pair, pair[:, -1:]], axis=1)
            # JPEGs as close to the pixels as the format goes (random noise suffers most).
            options = {"quality": 100, "subsampling": 0} if ext in ("jpg", "jpeg") else {}
            Image.fromarray(pair).save(folder / f"{k}.{ext}", **options)
        halves[split] = a
    return halves


def write_unpaired(root: Path, counts: dict[str, int], size=(20, 20), seed: int = 0) -> dict[str, np.ndarray]:
    """CycleGAN's layout: ``{"trainA": 5, "trainB": 3}`` writes ``<root>/trainA/0.png`` ...
    (random RGB, ``size`` = (width, height)). Returns the images of each folder."""
    rng = np.random.default_rng(seed)
    images = {}
    for sub, count in counts.items():
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        images[sub] = rng.integers(0, 256, (count, size[1], size[0], 3), dtype=np.uint8)
        for k in range(count):
            Image.fromarray(images[sub][k]).save(folder / f"{k}.png")
    return images
