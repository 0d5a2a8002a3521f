"""One protocol for every image-GAN report: N real images against N generated ones, and N
more real images against the first N for the real-vs-real floor, in each chosen family.

``evaluate.evaluate`` (a generator against its run's data) and ``folders.py`` (any two image
folders, or a generator against a folder) both end here, so the same images give the same
numbers whichever way they came in. Families (``evaluate.py`` describes them):

* ``classifier``: Fréchet distance and score in the judge's feature space, class accuracy for
  conditional samples (``judge.py``), and precision, recall, density and coverage there
  (``classifier_precision``, ...; ``prdc.py``).
* ``inception``: FID, KID, IS, and precision, recall, density and coverage on the Inception
  pool features (``precision``, ...; Kynkäänniemi et al., 2019; Naeem et al., 2020).

Every metric but IS, the classifier score and the class accuracy has its floor: the same
metric between two disjoint sets of N real images (a perfect generator scores about that at
this N; precision, recall and coverage are not 1 there, density is about 1).
"""

from __future__ import annotations

import torch

from gantrain.metrics import prdc

PRDC_NAMES = prdc.NAMES
JUDGE_SEED = 0  # fixed, not the evaluation's seed: one cached judge serves every evaluation
JUDGE_CLASSES = 10


def judge_data(source) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images and labels a judge trains on: an in-memory source's own tensors,
    else (a folder of class subfolders) every image read once."""
    images, labels = getattr(source, "images", None), getattr(source, "labels", None)
    if images is None or labels is None:
        images, labels = source.images_at(torch.arange(source.spec.size))
    return images, labels


def dataset_judge(source, cache_dir) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """``source``'s images and labels (``judge_data``) and its classifier judge: trained on
    them with ``JUDGE_SEED``, loaded from ``cache_dir`` (trained and cached now if not yet).
    One place for the judge's settings: the evaluation and the health probe share its cache."""
    from gantrain.metrics.judge import load_or_train_judge

    images, labels = judge_data(source)
    judge = load_or_train_judge(images, labels, JUDGE_CLASSES, source.spec.name, cache_dir, seed=JUDGE_SEED)
    return images, labels, judge


def score(
    real: torch.Tensor,
    fake: torch.Tensor,
    fake_labels: torch.Tensor | None,
    chosen: list[str],
    cfg,
    device,
    judge_source=None,
) -> dict:
    """The report of ``fake`` (N images in [-1, 1]) against ``real`` (2N: the first N for the
    score, the last N for the floor): ``metrics``, ``floor`` and the families' ``protocol``
    entries. ``judge_source``: the labelled data the classifier judge is (or was) trained on;
    ``cfg``: an ``EvalConfig``."""
    n = len(fake)
    if len(real) != 2 * n:
        raise ValueError(f"want 2N real images for N generated ones, got {len(real)} and {n}")
    report: dict = {"metrics": {}, "floor": {}, "protocol": {}}
    if "classifier" in chosen:
        _classifier(report, real, fake, fake_labels, cfg, device, judge_source)
    if "inception" in chosen:
        _inception(report, real, fake, cfg, device)
    return report


def _classifier(report: dict, real, fake, fake_labels, cfg, device, source) -> None:
    from gantrain.metrics.judge import (
        HELD_OUT_SHARE,
        held_out_accuracy,
        judge_metrics,
        judge_split,
        real_floor,
    )

    n = len(fake)
    images, labels, judge = dataset_judge(source, cfg.cache_dir)
    report["metrics"].update(judge_metrics(judge, real[:n], fake, fake_labels, prdc_device=device))
    report["floor"].update(real_floor(judge, real[:n], real[n:], prdc_device=device))
    trained_on, held_out = (len(index) for index in judge_split(len(images), JUDGE_SEED))
    protocol = report["protocol"]["classifier"] = {
        "judge": "gantrain SmallCNN (metrics/judge.py) trained on the dataset's training images less a "
        "held-out part, cached",
        "judge_train_images": trained_on,
        "judge_held_out_images": held_out,
        "held_out_split": f"1 image in {HELD_OUT_SHARE}, torch.randperm seeded with {JUDGE_SEED}",
        "floor": "classifier_fid, classifier_score"
        + (", classifier_" + ", classifier_".join(PRDC_NAMES) if "classifier_precision" in report["floor"] else "")
        + ": two disjoint sets of N real images",
        "prdc": prdc.protocol()
        if "classifier_precision" in report["metrics"]
        else f"skipped: needs N >= {prdc.least_samples()}",
    }
    if fake_labels is not None:
        # The ceiling of a conditional run's class accuracy: the judge on real images it never trained on.
        report["floor"]["class_accuracy"], _ = held_out_accuracy(judge, images, labels, JUDGE_SEED)
        protocol["class_accuracy_floor"] = f"the judge's accuracy on its {held_out} held-out real images"


def _inception(report: dict, real, fake, cfg, device) -> None:
    from gantrain.metrics.inception import inception_metrics

    n = len(fake)

    def batches(images):
        return (images[k : k + cfg.batch_size] for k in range(0, len(images), cfg.batch_size))

    common = dict(weights_path=cfg.inception_weights, device=device, option="inception_weights")
    scores = inception_metrics(batches(real[:n]), batches(fake), metrics=("fid", "kid", "is", "prdc"), **common)
    report["protocol"]["inception"] = scores.pop("protocol")
    report["metrics"].update(scores)
    floor = inception_metrics(batches(real[:n]), batches(real[n:]), metrics=("fid", "kid", "prdc"), **common)
    floor.pop("protocol")
    report["floor"].update(floor)
