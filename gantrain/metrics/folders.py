"""Scoring image folders with the protocol of runs: ``gantrain-eval --real DIR --fake DIR``
(any two folders) and ``gantrain-eval RUN --real DIR`` (a run's generator against a folder).

Both folders are read by the data layer (``data/folder.py``: every image file, flat or in
subfolders, 8-bit grey or RGB, resized and centre-cropped to a square of ``image_size``), the
way a run reads a folder dataset, so the pixels match what training would have seen. Then, as
in ``evaluate.evaluate``:

* real: ``2N`` images, a random subset seeded with ``seed`` (``evaluate.real_images``): N to
  score against, N for the real-vs-real floor. A real folder that is a run's dataset written
  out in order gives the very images that run's own evaluation draws at the same seed.
* generated: ``N`` images of the fake folder, a random subset seeded with ``seed + 1`` taken in
  file order (so a folder of exactly N samples is used as it is, in order, as a run's samples).

The families (``score.py``): ``inception`` for any folder; ``classifier`` when the real folder is
MNIST-like (28x28 grey in ten class subfolders, the judge's own training data, cached as a
run's judge is).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gantrain.data.spec import DataSpec
from gantrain.errors import OptionError, UserError
from gantrain.metrics.evaluate import EvalConfig, check_num_samples, families, generate, images_at, real_images
from gantrain.metrics.score import score

GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def folder_shape(path: str | Path, option: str) -> tuple[int, int]:
    """(channels, size) of a folder: 1 when every image is grey, else 3 (the data layer repeats
    grey images to RGB); the shorter side of its first image. ``option``: how the caller took
    ``path``, for the errors."""
    from PIL import Image

    from gantrain.data.folder import find_images
    from gantrain.data.images import READ_ERRORS

    root = Path(path).expanduser()
    if not root.is_dir():
        raise OptionError(option, f"{option} {root}: no such folder; point it at a folder of images")
    modes, size = set(), 0
    for file in find_images(root):
        try:
            with Image.open(file) as image:
                modes.add(image.mode)
                size = size or min(image.size)
        except READ_ERRORS:  # the data layer skips it and says so
            continue
    if not modes:
        raise OptionError(option, f"{option} {root} holds no readable images; point it at a folder of images")
    return (1 if modes <= GREY_MODES else 3), size


def read_folder(path: str | Path, image_size: int, channels: int, option: str):
    """The data layer's source for a folder of images (``data/folder.py``), its errors naming ``option``."""
    from gantrain.data.folder import folder

    try:
        return folder(str(path), image_size=image_size, channels=channels)
    except OptionError as exc:
        if exc.option != "path":
            raise
        raise OptionError(option, str(exc.under("", {"path": option}))) from None


def _fake_images(source, n: int, seed: int) -> torch.Tensor:
    """``n`` images of the fake folder: a seeded random subset, in file order, in [-1, 1]."""
    if n > source.spec.size:
        raise OptionError(
            "num_samples",
            f"num_samples={n} needs {n} generated images; {source.spec.name} holds {source.spec.size}: "
            f"lower num_samples",
        )
    index = torch.randperm(source.spec.size, generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return images_at(source, index)[0]


def _report(real, fake, fake_labels, real_source, cfg: EvalConfig, device, seed: int) -> dict:
    n = cfg.num_samples
    chosen = families(cfg, real_source.spec)
    report = score(real, fake, fake_labels, chosen, cfg, device, judge_source=real_source)
    report["protocol"] = {
        "num_samples": n,
        "real": f"folder {real_source.spec.name}, {2 * n} of its {real_source.spec.size} images, random subset "
        f"(seed {seed}), read at {real_source.spec.image_size}x{real_source.spec.image_size}",
        "families": chosen,
        **report["protocol"],
    }
    return report


def check_channels(real: int, fake: int, fake_is: str) -> None:
    if real != fake:
        words = {1: "grey", 3: "RGB"}
        raise UserError(
            f"the real folder holds {words[real]} images and {fake_is} {words[fake]} ones: "
            f"score images of one kind (convert one side)"
        )


def evaluate_folders(real: str, fake: str, cfg: EvalConfig, device, seed: int = 0, image_size: int = 0) -> dict:
    """Any two image folders: the images of folder ``fake`` against those of folder ``real``,
    floor from ``real``. Both are read at ``image_size`` (0: the shorter side of the real
    folder's first image). Errors name ``real``, ``fake`` and ``image_size`` bare."""
    if image_size < 0:
        raise OptionError("image_size", f"image_size={image_size}: use a positive size, or 0 for the real images'")
    real_channels, real_size = folder_shape(real, "real")
    fake_channels, _ = folder_shape(fake, "fake")
    check_channels(real_channels, fake_channels, "the fake folder holds")
    size = image_size or real_size
    real_source = read_folder(real, size, real_channels, "real")
    fake_source = read_folder(fake, size, fake_channels, "fake")
    check_num_samples(cfg.num_samples, real_source.spec)
    fakes = _fake_images(fake_source, cfg.num_samples, seed + 1)
    reals, _ = real_images(real_source, 2 * cfg.num_samples, seed)
    report = _report(reals, fakes, None, real_source, cfg, device, seed)
    report["protocol"]["fake"] = (
        f"folder {fake_source.spec.name}, {cfg.num_samples} of its {fake_source.spec.size} images, random subset "
        f"(seed {seed + 1}) in file order"
    )
    return report


def evaluate_generator_on_folder(
    sample, z_dim: int, num_classes: int, spec: DataSpec, real: str, cfg: EvalConfig, device, seed: int = 0
) -> dict:
    """``sample(z, y)`` (a run's generator, images of ``spec``) against the folder ``real`` read at
    the generator's image size; the samples are drawn exactly as ``evaluate.evaluate`` draws them."""
    channels, _ = folder_shape(real, "real")
    check_channels(channels, spec.channels, "the generator makes")
    real_source = read_folder(real, spec.image_size, channels, "real")
    check_num_samples(cfg.num_samples, real_source.spec)
    reals, _ = real_images(real_source, 2 * cfg.num_samples, seed)
    fakes, fake_labels = generate(sample, z_dim, num_classes, cfg.num_samples, seed + 1, cfg.batch_size, device)
    if num_classes != real_source.spec.num_classes:  # class accuracy needs the folder's classes to be G's
        fake_labels = None
    report = _report(reals, fakes, fake_labels, real_source, cfg, device, seed)
    report["protocol"]["fake"] = f"{cfg.num_samples} samples of the generator (noise seed {seed + 1})"
    return report
