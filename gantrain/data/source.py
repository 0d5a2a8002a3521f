"""The data source interface: what build, the models, the metrics and the tools may ask
of a dataset, declared once (``data/spec.py`` holds the spec and the streams).

Every builder in ``gantrain.data`` (``mnist``, ``folder``, ``facades``, ...) returns a
``DataSource``; the translation builders return a ``TranslationSource`` (paired data
adds ``validation_batches``). Two implementations cover them all: ``InMemorySource``
(one uint8 tensor: the MNIST family, synthetic data, decoded caches) and
``DatasetSource`` (a map-style dataset read by a DataLoader). Either can be limited to
a seeded random subset of its images (``subset``; ``data.max_images``, ``subset.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from gantrain.data.spec import BatchStream, DataSpec
from gantrain.data.subset import Part


class DataSource(Protocol):
    spec: DataSpec
    # The whole dataset is one tensor: images_at is a gather, not a decode per image.
    in_memory: bool

    def stream(
        self,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> BatchStream:
        """Batches forever, resumable (``spec.py``); ``shard``: (rank, world) under data parallelism."""
        ...

    def images_at(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The uint8 images at these positions, and their class labels (None: unlabelled)."""
        ...

    def class_labels(self) -> torch.Tensor | None:
        """Every image's class label, read without decoding an image; None when unlabelled."""
        ...

    def subset(self, n: int, seed: int) -> tuple[DataSource, dict[str, Part]]:
        """A source of the same kind that streams a seeded random ``n`` of the training
        images (of each domain, for unpaired data), and what it kept, by part ("images",
        or "A" and "B"): ``subset.py``. Held-out data (pix2pix's validation pairs) stays whole."""
        ...


class TranslationSource(DataSource, Protocol):
    def fixed_batch(self, n: int) -> dict[str, torch.Tensor]:
        """The first ``n`` held-out examples ({"A", "B"}), the same at every call."""
        ...


class PairedTranslationSource(TranslationSource, Protocol):
    def validation_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """The held-out pairs in batches, for the validation metrics."""
        ...
