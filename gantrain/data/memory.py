"""Datasets that fit in memory (the MNIST family, the bundled sample, synthetic).

They are kept as one uint8 tensor and batched by indexing it: no per-item Python,
no worker processes, no PIL. On a GPU the tensor lives on the device, so a batch
costs one gather and one conversion. This is why the small datasets do not go
through ``torch.utils.data.DataLoader``: its per-sample ``__getitem__`` and collate
would dominate the step time of a small GAN.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from gantrain.data.spec import EpochStream, to_unit_range


def resize_uint8(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize a (N, C, H, W) uint8 stack once, at load time (bilinear, antialiased)."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    resized = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear",
                            antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


class TensorStream(EpochStream):
    """Endless shuffled batches from in-memory uint8 images (N, C, H, W)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
                 seed: int, device: torch.device | str = "cpu", shard: tuple[int, int] = (0, 1)) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("TensorStream wants uint8 images of shape (N, C, H, W)")
        super().__init__(len(images), batch_size, seed, device, shard)
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device, torch.int64)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            # view, not split: an epoch already used up must give no batch, not an empty one.
            for index in self.remaining_order().to(self.device).view(-1, self.batch_size):
                self.batch += 1
                batch = {"image": to_unit_range(self.images[index])}
                if self.labels is not None:
                    batch["label"] = self.labels[index]
                yield batch
            self.epoch += 1
            self.batch = 0


class InMemorySource:
    """A dataset held as one uint8 tensor: its spec plus a way to stream it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, spec) -> None:
        self.images = images
        self.labels = labels
        self.spec = spec

    def stream(self, batch_size: int, seed: int, device: torch.device | str = "cpu",
               num_workers: int = 0, shard: tuple[int, int] = (0, 1)) -> TensorStream:
        del num_workers  # nothing to parallelise: a batch is one gather
        return TensorStream(self.images, self.labels, batch_size, seed, device, shard)
