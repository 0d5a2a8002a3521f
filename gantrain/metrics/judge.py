"""Generator metrics for the MNIST family that need no download: a judge trained by gantrain.

The judge is ``classifier.SmallCNN``, trained by gantrain itself on the dataset's own
real training images (MNIST, Fashion-MNIST, the bundled sample) and cached on disk.
It trains on five sixths of them: ``judge_split`` holds out a random sixth (seeded with
the judge's seed, 0 by default; on MNIST's 60,000 training images, 50,000 / 10,000), on which
``held_out_accuracy`` measures the judge's own accuracy. That is the ceiling printed
beside ``class_accuracy``: what a generator that draws every class perfectly would
score, measured, like the generated images, on images the judge never trained on (on
its training images the judge scores what it memorised, a ceiling no sample can reach).
From it, these numbers:

* ``classifier_fid``: the Fréchet distance between real and generated images in the
  judge's 128-d penultimate feature space, ``||mu_r - mu_g||^2 + tr(S_r + S_g -
  2 (S_r S_g)^(1/2))`` (the FID of Heusel et al., 2017, with the judge in place of
  Inception). Lower is better.
* ``classifier_score``: ``exp(E_x KL(p(y|x) || p(y)))`` with the judge's class
  probabilities (the Inception Score of Salimans et al., 2016, with the judge in place
  of Inception): high when each sample is confidently one class and the classes are
  evenly used. At most the number of classes (10). Higher is better.
* ``class_accuracy`` (conditional generators only): the share of samples the judge
  labels as the class they were drawn for; chance is 1 / num_classes, the ceiling is
  ``held_out_accuracy``.
* ``classifier_precision``, ``_recall``, ``_density``, ``_coverage`` (on request): the
  k-NN manifold metrics of Kynkäänniemi et al. (2019) and Naeem et al. (2020) in the
  same 128-d feature space (``prdc.py``). Higher is better.

Why not Inception: its weights need a download (gantrain must work offline), and
Inception features, learnt on 299x299 colour photographs, fit 28x28 grey digits
poorly (the images must be upscaled and repeated over three channels). A judge that
knows the dataset sees what matters in it.

The numbers are comparable only when they come from the same judge (the same cache
key: the same training images, labels and recipe; see ``load_or_train_judge``) and
the same number of samples N: Fréchet distances are biased upwards at small N, so
report them next to ``real_floor``, what two disjoint real sets of that N score.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gantrain.atomic import atomic_write
from gantrain.data.spec import to_unit_range
from gantrain.errors import UserError
from gantrain.metrics import classifier
from gantrain.metrics.classifier import SmallCNN

log = logging.getLogger("gantrain")

# Bump whenever the judge's training changes (architecture, optimiser, augmentation,
# fit_classifier's defaults, the held-out split): old cache files then no longer match
# and are retrained. 2: trains on all but the held-out sixth (1 trained on every image).
RECIPE_VERSION = 2
HELD_OUT_SHARE = 6  # one image in six is held out from the judge's training


def judge_split(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_index, held_out_index)``: disjoint, sorted, together ``range(n)``. The held-out
    part is ``max(1, n // 6)`` images picked by ``torch.randperm(n)`` seeded with ``seed``, so
    it depends only on n and the seed (not on the evaluation's N or seed): one cached judge
    serves every evaluation of a dataset."""
    if n < 2:
        raise UserError(
            f"the classifier judge needs at least 2 labelled images (one to train on, one held out), got {n}"
        )
    held = max(1, n // HELD_OUT_SHARE)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held:].sort().values, order[:held].sort().values


# --- the judge and its cache -------------------------------------------------------


def judge_cache_key(images_uint8: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int, seed: int) -> str:
    """16 hex digits of a SHA-256 over the recipe (RECIPE_VERSION, epochs, seed, which
    also draws the held-out split, num_classes, the held-out share) and the data given,
    held-out part included (shape, dtype, every label and every image byte; hashing all
    of MNIST's 47 MB takes well under a second). The images the judge trains on are a
    function of these, so the key names them exactly."""
    digest = hashlib.sha256()
    digest.update(
        f"recipe={RECIPE_VERSION};epochs={epochs};seed={seed};classes={num_classes};"
        f"held_out=1/{HELD_OUT_SHARE};"
        f"shape={tuple(images_uint8.shape)};dtype={images_uint8.dtype};"
        f"labels={len(labels)};".encode()
    )
    digest.update(memoryview(labels.detach().cpu().to(torch.int64).contiguous().numpy()))
    digest.update(memoryview(np.ascontiguousarray(images_uint8.detach().cpu().numpy())).cast("B"))
    return digest.hexdigest()[:16]


def judge_path(cache_dir: str | Path, dataset_name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_name).strip("_") or "data"
    return Path(cache_dir) / f"judge_{safe}_{key}.pt"


def load_or_train_judge(
    images_uint8: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    dataset_name: str,
    cache_dir: str | Path,
    epochs: int = 15,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> SmallCNN:
    """The judge for these training images: loaded from ``<cache_dir>/judge_<dataset_name>_<key>.pt``
    when there, else trained (``fit_classifier``) on the images ``judge_split(len(images),
    seed)`` does not hold out, and cached. A cache file that cannot be read or does not
    match is retrained and replaced. Returns the model in eval mode, on the CPU.

    Training runs on ``device`` (default: CUDA when available): on full MNIST (60,000
    images given, 50,000 trained on, 15 epochs) that is seconds on a GPU and about a quarter
    of an hour on two idle CPU cores. The device is not part of the cache key: a GPU-trained
    judge differs from a CPU-trained one only in rounding, and the cache keeps whichever was
    trained first."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError(
            f"the judge wants uint8 images (N, C, H, W), not {images_uint8.dtype} {tuple(images_uint8.shape)}"
        )
    if len(labels) != len(images_uint8):
        raise ValueError(f"{len(images_uint8)} images but {len(labels)} labels")
    if len(images_uint8) == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise UserError(
            f"the classifier judge of {dataset_name} needs labelled images with classes 0..{num_classes - 1}"
        )
    channels, image_size = int(images_uint8.shape[1]), int(images_uint8.shape[2])
    train_index, held_out_index = judge_split(len(images_uint8), seed)
    key = judge_cache_key(images_uint8, labels, num_classes, epochs, seed)
    path = judge_path(cache_dir, dataset_name, key)
    # num_images: the images given; the judge trained on num_train of them, num_held_out held out.
    meta = {
        "recipe_version": RECIPE_VERSION,
        "key": key,
        "dataset": dataset_name,
        "num_images": len(images_uint8),
        "num_train": len(train_index),
        "num_held_out": len(held_out_index),
        "num_classes": num_classes,
        "channels": channels,
        "image_size": image_size,
        "epochs": epochs,
        "seed": seed,
    }

    if path.exists():
        try:
            model = _load(path, meta)
            log.info("classifier judge: loaded %s", path)
            return model
        except Exception as exc:  # truncated, not a torch file, wrong shapes, another key...
            log.warning(
                "classifier judge: cache file %s unusable (%s: %s); retraining it",
                path,
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            )

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    log.info(
        "classifier judge: training on %d images of %s, %d held out (%d epochs, seed %d, %s) -> %s",
        len(train_index),
        dataset_name,
        len(held_out_index),
        epochs,
        seed,
        device.type,
        path,
    )
    held_out = to_unit_range(images_uint8[held_out_index].detach()), labels[held_out_index].detach().cpu()
    images = to_unit_range(images_uint8[train_index].detach().to(device))
    labels = labels[train_index].detach().to(device, torch.int64)
    # Through the module attribute, so that tests can replace it.
    with torch.enable_grad():  # callers may be inside no_grad (sampling code): training needs gradients
        model = classifier.fit_classifier(images, labels, num_classes, epochs=epochs, seed=seed, device=device)
    model = model.cpu().eval()
    # A sanity check on a fixed subset (a full pass over MNIST would cost a minute on a CPU).
    subset = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:1000]
    meta["train_accuracy"] = classifier.accuracy(model, images[subset.to(device)].cpu(), labels[subset.to(device)])
    meta["held_out_accuracy"] = classifier.accuracy(model, *held_out)
    meta["trained_on"] = device.type
    log.info(
        "classifier judge: %.1f%% accuracy on %d of its training images, %.1f%% on its %d held-out images",
        100 * meta["train_accuracy"],
        len(subset),
        100 * meta["held_out_accuracy"],
        len(held_out_index),
    )
    _save_atomic(path, {"state_dict": model.state_dict(), "meta": meta})
    return model


def _load(path: Path, expected: dict) -> SmallCNN:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    meta = payload["meta"]
    for name in ("recipe_version", "key", "num_classes", "channels", "image_size", "epochs", "seed"):
        if meta.get(name) != expected[name]:
            raise ValueError(f"its {name} is {meta.get(name)!r}, not {expected[name]!r}")
    model = SmallCNN(expected["channels"], expected["image_size"], expected["num_classes"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def _save_atomic(path: Path, payload: dict) -> None:
    """A reader (or a second process training the same judge) never sees half a file."""
    atomic_write(path, lambda f: torch.save(payload, f))


# --- the metrics -------------------------------------------------------------------


class _Precomputed(nn.Module):
    """A pass-through "feature extractor" for torchmetrics' FID: the judge's features
    are computed once (they also feed the classifier score), so the metric is handed
    the features themselves. ``num_features`` spares torchmetrics its dummy forward."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between two (N, d) feature
    sets (sample covariances, N - 1), computed by torchmetrics' FrechetInceptionDistance
    with a pass-through feature module, in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"want two (N, d) feature sets, got {tuple(features_a.shape)} and {tuple(features_b.shape)}")
    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError("a Fréchet distance needs at least two samples on each side")
    metric = FrechetInceptionDistance(feature=_Precomputed(features_a.shape[1]))
    metric.update(features_a.detach().cpu().double(), real=True)
    metric.update(features_b.detach().cpu().double(), real=False)
    # tr((S_a S_b)^(1/2)) via eigenvalues can come out a hair negative for identical sets.
    return max(float(metric.compute()), 0.0)


def classifier_score(probabilities: torch.Tensor, splits: int = 1) -> tuple[float, float]:
    """``exp(E_x KL(p(y|x) || p(y)))`` over (N, K) class probabilities, p(y) the mean of
    p(y|x) within each split (Salimans et al., 2016, with the judge for Inception). The
    N samples are cut, in order, into ``splits`` equal parts; returns the mean and the
    (population) standard deviation of the per-split scores, as the original code does."""
    if probabilities.dim() != 2 or not 1 <= splits <= len(probabilities):
        raise ValueError(
            f"want (N, K) probabilities and 1 <= splits <= N, got {tuple(probabilities.shape)}, splits={splits}"
        )
    p = probabilities.detach().cpu().double().clamp_min(1e-12)
    scores = []
    for part in torch.tensor_split(p, splits):
        marginal = part.mean(0, keepdim=True)
        kl = (part * (part.log() - marginal.log())).sum(1)
        scores.append(kl.mean().exp())
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False))


@torch.no_grad()
def judge_outputs(judge: SmallCNN, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's (N, 128) features and (N, K) class probabilities for images in [-1, 1]."""
    if images.dim() != 4:
        raise ValueError(f"want images (N, C, H, W) in [-1, 1], got {tuple(images.shape)}")
    judge.eval()
    device = next(judge.parameters()).device
    features, probabilities = [], []
    for k in range(0, len(images), batch_size):
        f = judge.features(images[k : k + batch_size].to(device, torch.float32))
        features.append(f.cpu())
        probabilities.append(judge.classify(f).softmax(1).cpu())
    return torch.cat(features), torch.cat(probabilities)


def judge_metrics(
    judge: SmallCNN,
    real: torch.Tensor,
    fake: torch.Tensor,
    fake_labels: torch.Tensor | None = None,
    prdc_device: torch.device | str | None = None,
) -> dict:
    """``classifier_fid`` (real vs fake), ``classifier_score`` (of the fakes), and with
    ``fake_labels`` (the class each fake was drawn for) ``class_accuracy``. Images are
    floats in [-1, 1], (N, C, H, W). With ``prdc_device``, also ``classifier_precision``,
    ``_recall``, ``_density`` and ``_coverage`` in the judge's feature space (``prdc.py``),
    computed there, when both sets hold at least ``prdc.least_samples()`` images."""
    from gantrain.metrics import prdc

    real_features, _ = judge_outputs(judge, real)
    fake_features, fake_probabilities = judge_outputs(judge, fake)
    metrics = {
        "classifier_fid": frechet_distance(real_features, fake_features),
        "classifier_score": classifier_score(fake_probabilities)[0],
    }
    if prdc_device is not None and min(len(real), len(fake)) >= prdc.least_samples():
        scores = prdc.prdc(real_features, fake_features, device=prdc_device)
        metrics.update({f"classifier_{name}": value for name, value in scores.items()})
    if fake_labels is not None:
        if len(fake_labels) != len(fake):
            raise ValueError(f"{len(fake)} fakes but {len(fake_labels)} labels")
        hits = fake_probabilities.argmax(1) == fake_labels.detach().cpu().long()
        metrics["class_accuracy"] = float(hits.float().mean())
    return metrics


def held_out_accuracy(
    judge: SmallCNN, images_uint8: torch.Tensor, labels: torch.Tensor, seed: int = 0
) -> tuple[float, int]:
    """The ceiling of ``class_accuracy``: the judge's accuracy on the part of ``images_uint8``
    (the images ``load_or_train_judge`` was given, with the same ``seed``) that ``judge_split``
    held out of its training, and how many images that is."""
    _, held_out_index = judge_split(len(images_uint8), seed)
    images = to_unit_range(images_uint8[held_out_index])
    return classifier.accuracy(judge, images, labels[held_out_index]), len(held_out_index)


def real_floor(
    judge: SmallCNN,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    labels_b: torch.Tensor | None = None,
    prdc_device: torch.device | str | None = None,
) -> dict:
    """``judge_metrics`` of one real set against another, disjoint one of the same N:
    what a perfect generator would score at this N (the Fréchet distance is not 0 there,
    it is biased upwards at small N). With ``labels_b``, also ``class_accuracy``; with
    ``prdc_device``, also the PRDC four."""
    if len(real_a) != len(real_b):
        raise ValueError(f"the real-vs-real floor wants two sets of the same N, got {len(real_a)} and {len(real_b)}")
    return judge_metrics(judge, real_a, real_b, labels_b, prdc_device)
