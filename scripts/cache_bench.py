"""Images/s of a folder dataset read by DataLoader workers (decode + resize every epoch)
against the same folder after ``data.cache=true`` (decoded once, then served from a
memory-mapped uint8 array). Writes N CelebA-sized JPEGs (178x218) to a temporary folder.

    python scripts/cache_bench.py --images 2000 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gantrain.data.folder import folder


def write_jpegs(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    for k in range(n):  # smooth-ish images compress like photos, not like noise
        image = np.roll(base, k, axis=1) // 2 + rng.integers(0, 128, (1, 1, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / f"{k:06d}.jpg", quality=90)


def epoch_rate(source, batch_size: int, workers: int) -> float:
    stream = source.stream(batch_size, seed=0, num_workers=workers)
    batches = source.spec.size // batch_size
    it = iter(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "faces", Path(tmp) / "cache"
        root.mkdir()
        write_jpegs(root, args.images)
        plain = folder(str(root), image_size=args.size)
        print(f"{args.images} JPEGs 178x218 -> {args.size}x{args.size}, batch {args.batch_size}")
        print(f"  DataLoader, {args.workers} workers: {epoch_rate(plain, args.batch_size, args.workers):8.0f} images/s")
        start = time.perf_counter()
        cached = folder(str(root), image_size=args.size, cache=True, cache_dir=str(cache))
        print(f"  building the cache (once):     {time.perf_counter() - start:8.1f} s")
        print(f"  from the cache (memory-mapped): {epoch_rate(cached, args.batch_size, 0):8.0f} images/s")


if __name__ == "__main__":
    main()
