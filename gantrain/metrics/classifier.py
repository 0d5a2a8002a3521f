"""A small convolutional classifier for judging conditional generators offline.

Trained on real, held-out images, it answers "does the generator draw the class it
was asked for?": the share of generated images that it labels as the requested
class (10% is chance for ten classes). No pretrained weights, so it needs no
download. The architecture is the classic two-convolution MNIST net: conv 5x5 ->
max-pool -> conv 5x5 -> max-pool -> two linear layers (LeCun et al., 1998, in spirit).
Its 128-d penultimate activations (``SmallCNN.features``) are the feature space of the
download-free Fréchet distance in ``judge.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, channels: int, image_size: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        reduced = image_size // 4  # two 2x2 poolings, 'same' padding
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * reduced * reduced, 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate activations, (N, 128): after the first linear layer's ReLU and
        before the dropout, so they are the same in train and eval mode (what
        ``judge.py`` measures Fréchet distances in)."""
        return self.net[:-2](images)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits from ``features`` (dropout in train mode, then the last linear layer)."""
        return self.net[-1](self.net[-2](features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 20,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> SmallCNN:
    """Images in [-1, 1], (N, C, H, W); small random shifts keep it from memorising.
    Trains on ``device`` (default: where ``images`` are) and returns the model there."""
    device = images.device if device is None else torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallCNN(images.shape[1], images.shape[2], num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            index = order[start : start + batch_size]
            batch = _shift(images[index.to(images.device)].to(device), generator)
            loss = F.cross_entropy(model(batch), labels[index.to(labels.device)].to(device).long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def _shift(images: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Translate the whole batch by up to ``pixels`` in each direction, padding with -1 (black)."""
    dx, dy = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=generator))
    padded = F.pad(images, (pixels, pixels, pixels, pixels), value=-1.0)
    h, w = images.shape[2:]
    return padded[:, :, pixels + dy : pixels + dy + h, pixels + dx : pixels + dx + w]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [model(images[k : k + batch_size].to(device)).argmax(1).cpu() for k in range(0, len(images), batch_size)]
    )


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict(model, images) == labels.cpu().long()).float().mean().item()


@torch.no_grad()
def conditional_accuracy(
    G: nn.Module, judge: nn.Module, num_classes: int, per_class: int, seed: int = 0, batch_size: int = 500
) -> torch.Tensor:
    """For each class k, the share of ``per_class`` images that G draws for k and that
    ``judge`` labels k. G takes ``(z, y)`` and has a ``z_dim``; fixed noise per seed."""
    device = next(G.parameters()).device
    asked = torch.arange(num_classes).repeat_interleave(per_class)
    z = torch.randn(len(asked), G.z_dim, generator=torch.Generator().manual_seed(seed))
    images = torch.cat(
        [
            G(z[k : k + batch_size].to(device), asked[k : k + batch_size].to(device)).cpu()
            for k in range(0, len(asked), batch_size)
        ]
    )
    hits = (predict(judge, images) == asked).float()
    return hits.view(num_classes, per_class).mean(1)
