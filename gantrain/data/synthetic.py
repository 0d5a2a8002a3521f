"""Random images, for smoke runs and tests: no files, any shape, optional labels."""

from __future__ import annotations

import torch

from gantrain.checks import Count, PositiveInt
from gantrain.data.memory import InMemorySource
from gantrain.data.spec import DataSpec


def synthetic(
    size: PositiveInt = 512,
    channels: PositiveInt = 3,
    image_size: PositiveInt = 32,
    num_classes: Count = 0,
    seed: int = 0,
) -> InMemorySource:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (size, channels, image_size, image_size), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (size,), generator=generator) if num_classes else None
    spec = DataSpec(
        channels=channels,
        image_size=image_size,
        num_classes=num_classes,
        size=size,
        class_names=tuple(str(k) for k in range(num_classes)),
        name="synthetic",
    )
    return InMemorySource(images, labels, spec)
