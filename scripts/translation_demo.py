"""Do pix2pix and CycleGAN really learn? Synthetic image-to-image tasks with a known answer.

Two "styles" of the same scenes: a scene is a few random rectangles on a dark
background. Style A paints each rectangle one flat colour; style B is a fixed,
learnable function of A: the colour channels rotated (R, G, B) -> (B, R, G), the
brightness inverted inside the rectangles, and a horizontal stripe texture added.

* pix2pix gets (A, B) pairs (``data=paired_folder``) and is scored by its own
  validation PSNR of G(A) against B, beside the identity baseline PSNR(A, B).
* CycleGAN gets A scenes and *different* B scenes (``data=unpaired_folder``); since we
  know the true B of every test A, we score PSNR(G_AB(a), style_B(a)) beside the
  identity baseline PSNR(a, style_B(a)).

Both train through gantrain's real loaders and engine (files on disk in the exact
pix2pix / CycleGAN layouts).

    python scripts/translation_demo.py                 # both, the numbers in the issue note
    python scripts/translation_demo.py --model pix2pix --steps 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)
import numpy as np
import torch
from PIL import Image

from gantrain.build import run  # noqa: E402
from gantrain.config import compose_config  # noqa: E402
from gantrain.trained import load_generator  # noqa: E402


def scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """Style A: 2-4 flat-coloured rectangles on a dark background, uint8 (size, size, 3)."""
    image = np.full((size, size, 3), 20, dtype=np.uint8)
    for _ in range(rng.integers(2, 5)):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(8, size // 2, 2)
        image[y0 : y0 + h, x0 : x0 + w] = rng.integers(60, 256, 3)
    return image


def style_b(a: np.ndarray) -> np.ndarray:
    """The fixed mapping A -> B: rotate the channels, invert inside shapes, add stripes."""
    b = a[..., [2, 0, 1]].astype(np.int32)
    inside = (a > 20).any(-1, keepdims=True)
    b = np.where(inside, 255 - b, b)
    stripes = (np.arange(a.shape[0]) // 4 % 2 == 0)[:, None, None]
    b = np.where(inside & stripes, b * 3 // 4, b)
    return b.clip(0, 255).astype(np.uint8)


def write_pairs(root: Path, counts: dict[str, int], size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        for k in range(count):
            a = scene(rng, size)
            Image.fromarray(np.concatenate([a, style_b(a)], axis=1)).save(root / split / f"{k}.png")


def write_domains(root: Path, counts: dict[str, int], size: int, seed: int) -> None:
    """Unpaired: every A and every B image comes from its own random scene."""
    rng = np.random.default_rng(seed)
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True)
        for k in range(count):
            image = scene(rng, size)
            Image.fromarray(style_b(image) if folder.endswith("B") else image).save(root / folder / f"{k}.png")


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean per-image PSNR of images in [0, 1]."""
    mse = (x - y).square().flatten(1).mean(1)
    return (10 * torch.log10(1 / mse)).mean().item()


def train(run_dir: Path, overrides: list[str], steps: int, device: str) -> float:
    overrides = [
        *overrides,
        f"trainer.steps={steps}",
        "trainer.progress=false",
        f"device={device}",
        f"trainer.log_every={max(1, steps // 10)}",
        f"trainer.sample_every={steps}",
        f"trainer.checkpoint_every={steps}",
        "data.num_workers=0",
    ]
    start = time.perf_counter()
    run(compose_config(overrides), run_dir, overrides)
    return time.perf_counter() - start


def load_test_pairs(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A scenes and their true B, in [0, 1], from files holding A (CycleGAN's testA)."""
    a = np.stack([np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))])
    b = np.stack([style_b(image) for image in a])
    to_tensor = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return to_tensor(a), to_tensor(b)


def pix2pix(work: Path, args) -> None:
    data = work / "pairs"
    write_pairs(data, {"train": 400, "val": 50}, args.size, args.seed)
    overrides = [
        "model=pix2pix",
        "data=paired_folder",
        f"data.path={data}",
        f"data.image_size={args.size}",
        f"data.load_size={args.size + args.size // 8}",
        f"data.batch_size={args.batch_size}",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
    ]
    seconds = train(work / "pix2pix", overrides, args.steps, args.device)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(work / "pix2pix" / "tb"))
    events.Reload()
    val = {tag: events.Scalars(tag)[-1].value for tag in ("val/psnr", "val/ssim", "val/l1")}
    pairs = np.stack([np.asarray(Image.open(p)) for p in sorted((data / "val").glob("*.png"))])
    a, b = (
        torch.from_numpy(pairs[:, :, s]).permute(0, 3, 1, 2).float() / 255
        for s in (slice(0, args.size), slice(args.size, None))
    )
    print(
        f"pix2pix {args.size}x{args.size}: {args.steps} steps, batch {args.batch_size}, width {args.width}, "
        f"{seconds / 60:.1f} min on {args.device}: validation PSNR {val['val/psnr']:.2f} dB "
        f"(identity baseline {psnr(a, b):.2f} dB), SSIM {val['val/ssim']:.3f}, L1 {val['val/l1']:.4f}"
    )


def cyclegan(work: Path, args) -> None:
    data = work / "domains"
    write_domains(data, {"trainA": 400, "trainB": 400, "testA": 50, "testB": 50}, args.size, args.seed)
    overrides = [
        "model=cyclegan",
        "loss=lsgan",
        "data=unpaired_folder",
        f"data.path={data}",
        f"data.image_size={args.size}",
        f"data.load_size={args.size + args.size // 8}",
        f"data.batch_size={args.batch_size}",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
    ]
    seconds = train(work / "cyclegan", overrides, args.steps, args.device)
    G, _ = load_generator(work / "cyclegan")
    a, b = load_test_pairs(data / "testA")
    with torch.no_grad():
        fake_b = (G["AB"](a * 2 - 1) + 1) / 2
    print(
        f"CycleGAN {args.size}x{args.size}: {args.steps} steps, batch {args.batch_size}, width {args.width}, "
        f"{seconds / 60:.1f} min on {args.device}: PSNR of G_AB(a) against the true B {psnr(fake_b, b):.2f} dB "
        f"(identity baseline {psnr(a, b):.2f} dB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["pix2pix", "cyclegan", "both"], default="both")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model in ("pix2pix", "both"):
            pix2pix(Path(tmp), args)
        if args.model in ("cyclegan", "both"):
            cyclegan(Path(tmp), args)


if __name__ == "__main__":
    main()
