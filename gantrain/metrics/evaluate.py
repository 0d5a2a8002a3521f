"""Evaluating an image generator: draw N samples, score them against N real training
images, and report the numbers with the protocol that produced them.

Two families, chosen by ``metrics`` (``auto`` picks by the data):
* ``classifier``, for the MNIST family (28x28 grey, 10 classes): a small CNN trained
  by gantrain on the dataset's own training images and cached (``judge.py``); no
  download. Fréchet distance in its feature space, classifier score, and for
  conditional models the rate at which samples show their class.
* ``inception``: FID, KID and IS through torchmetrics (``inception.py``); needs the
  Inception weights (downloaded once, or ``inception_weights=<file>``).

Both families also report precision, recall, density and coverage (Kynkäänniemi et al.,
2019; Naeem et al., 2020) in their feature space (``prdc.py``: ``precision``, ...;
``classifier_precision``, ...): they come with the family, no switch (at N = 1000 they
cost a fraction of the feature extraction). ``score.py`` computes every family for any
2N real and N generated images; ``folders.py`` feeds it image folders.

Every report also scores two disjoint sets of N real images against each other: the
floor that a perfect generator would reach at this N (Fréchet distances are biased
upwards at small N, so a number means little without it). The exception is the
conditional ``class_accuracy``: its ceiling is the judge's accuracy on the real images
held out of its training (``judge.judge_split``), not on images it learnt. The report's
``protocol`` records how every number was made; ``protocol_lines`` says it in words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gantrain.checks import at_least
from gantrain.data.spec import to_unit_range
from gantrain.errors import OptionError
from gantrain.metrics import prdc
from gantrain.metrics.names import LOWER_IS_BETTER

FAMILIES = ("classifier", "inception")


@dataclass(frozen=True)
class EvalConfig:
    every: int = 0  # steps between evaluations during training; 0: only gantrain-eval
    num_samples: int = 1000
    metrics: list[str] = field(default_factory=lambda: ["auto"])
    best: str = "auto"  # the metric that picks checkpoints/best.pt
    inception_weights: str | None = None
    cache_dir: str = ".cache/gantrain"
    batch_size: int = 250

    def __post_init__(self) -> None:
        at_least("every", self.every, 0)
        at_least("num_samples", self.num_samples, 2)
        at_least("batch_size", self.batch_size, 1)
        unknown = [m for m in self.metrics if m not in (*FAMILIES, "auto")]
        if unknown:
            raise OptionError(
                "metrics", f"metrics: {', '.join(unknown)} unknown: use a list of classifier, inception, or [auto]"
            )


def families(cfg: EvalConfig, spec) -> list[str]:
    """The metric families that apply to this data."""
    mnist_like = spec.channels == 1 and spec.image_size == 28 and spec.num_classes == 10
    chosen = [m for m in cfg.metrics if m != "auto"]
    if "auto" in cfg.metrics:
        chosen.append("classifier" if mnist_like else "inception")
    if "classifier" in chosen and not mnist_like:
        raise OptionError(
            "metrics",
            f"metrics=[classifier] needs MNIST-family data (28x28 grey, 10 classes), not "
            f"{spec.name}: use metrics=[inception]",
        )
    return list(dict.fromkeys(chosen))


def best_metric(cfg: EvalConfig, chosen: list[str]) -> str:
    if cfg.best != "auto":
        return cfg.best
    return "classifier_fid" if "classifier" in chosen else "fid"


def real_images(source, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` real training images in [-1, 1] (and their labels), a seeded random subset."""
    size = source.spec.size
    if n > size:
        raise OptionError("n", f"n={n} is more than the {size} real images of {source.spec.name}")
    return images_at(source, torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n])


def check_num_samples(num_samples: int, spec) -> None:
    """An evaluation draws 2N distinct real images: N for the score, N for the floor."""
    if 2 * num_samples > spec.size:
        raise OptionError(
            "num_samples",
            f"num_samples={num_samples} needs {2 * num_samples} real images (N for "
            f"the score, N for the real-vs-real floor); {spec.name} has {spec.size}: lower "
            f"num_samples",
        )


def images_at(source, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The source's images at ``index`` in [-1, 1] (and their labels)."""
    images, labels = source.images_at(index)
    return to_unit_range(images), labels


@torch.no_grad()
def generate(
    sample: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    z_dim: int,
    num_classes: int,
    n: int,
    seed: int,
    batch_size: int,
    device,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples from ``sample(z, y)`` on the CPU; classes balanced when conditional."""
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % num_classes if num_classes else None
    chunks = [
        sample(z[k : k + batch_size].to(device), None if y is None else y[k : k + batch_size].to(device)).cpu()
        for k in range(0, n, batch_size)
    ]
    return torch.cat(chunks).clamp(-1, 1), y


def evaluate(sample, z_dim: int, num_classes: int, source, cfg: EvalConfig, device, seed: int = 0) -> dict:
    """Score ``sample(z, y)`` (a generator in eval mode) against ``source``'s real images."""
    from gantrain.metrics.score import score

    chosen = families(cfg, source.spec)
    n = cfg.num_samples
    check_num_samples(n, source.spec)
    # 2n real images: n to compare with the samples, n more for the real-vs-real floor.
    real, _ = real_images(source, 2 * n, seed)
    fake, fake_labels = generate(sample, z_dim, num_classes, n, seed + 1, cfg.batch_size, device)
    report = score(real, fake, fake_labels, chosen, cfg, device, judge_source=source)
    report["protocol"] = {
        "num_samples": n,
        "real": f"{source.spec.name}, random subset (seed {seed})",
        "families": chosen,
        **report["protocol"],
    }
    return report


def protocol_lines(protocol: dict) -> list[str]:
    """A report's protocol in a few lines of words, to print beside its numbers."""
    where = protocol.get("real") or protocol.get("images")
    lines = [f"N = {protocol.get('num_samples')}" + (f"; real images: {where}" if where else "")]
    if "fake" in protocol:  # folders (metrics/folders.py)
        lines.append(f"generated images: {protocol['fake']}")
    judge = protocol.get("classifier")
    if isinstance(judge, dict):
        line = (
            f"classifier judge: trained on {judge['judge_train_images']} real images, "
            f"{judge['judge_held_out_images']} held out ({judge['held_out_split']}); floor of {judge['floor']}"
        )
        if "class_accuracy_floor" in judge:
            line += f"; of class_accuracy: {judge['class_accuracy_floor']}"
        lines.append(line)
    inception = protocol.get("inception")
    if isinstance(inception, dict):
        line = f"Inception ({inception['weights']} weights): {inception['input']}"
        if "kid_subset_size" in inception:
            line += f"; KID: {inception['kid_subsets']} subsets of {inception['kid_subset_size']} images each"
        if "is_splits_used" in inception:
            line += f"; IS: {inception['is_splits_used']} splits of {inception['is_images_per_split']} images"
        lines.append(line)
    elif inception is not None:
        lines.append(f"Inception: {inception}")
    # PRDC: the same k in both feature spaces, so one line.
    prdc = [part["prdc"] for part in (judge, inception) if isinstance(part, dict) and part.get("prdc")]
    if prdc:
        lines.append(f"PRDC: {prdc[0]}")
    if "generator" in protocol:  # translators: how G ran (gantrain/test_time.py)
        lines.append(f"generator: {protocol['generator']}")
    return lines


class GeneratorEvaluator:
    """What the training loop calls every ``every`` steps, and what ``gantrain-eval``
    uses: ``evaluator(G)`` samples G in eval mode and returns the report."""

    def __init__(self, cfg: EvalConfig, source, z_dim: int, num_classes: int, device, seed: int = 0) -> None:
        self.cfg, self.source, self.device, self.seed = cfg, source, device, seed
        self.z_dim, self.num_classes = z_dim, num_classes
        self.every = cfg.every
        chosen = families(cfg, source.spec)
        self.best = best_metric(cfg, chosen)
        # What would stop the first evaluation stops the run now, hours earlier, while the
        # config layer still adds the key path to an option's error.
        check_num_samples(cfg.num_samples, source.spec)
        least = prdc.least_samples()
        if self.best.removeprefix("classifier_") in prdc.NAMES and cfg.num_samples < least:
            raise OptionError(
                "num_samples",
                f"num_samples={cfg.num_samples} is too few for best={self.best}: its k-NN balls need "
                f"num_samples >= {least}",
                also=("best",),
            )
        if "inception" in chosen:  # weights that cannot be had: load once (download if need be), drop
            from gantrain.metrics.inception_weights import load_inception

            load_inception(cfg.inception_weights, option="inception_weights")

    def __call__(self, generator: torch.nn.Module) -> dict:
        was_training = generator.training
        generator.eval()
        try:

            def sample(z, y):
                return generator(z, y) if self.num_classes else generator(z)

            return evaluate(sample, self.z_dim, self.num_classes, self.source, self.cfg, self.device, self.seed)
        finally:
            generator.train(was_training)

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best if self.best in LOWER_IS_BETTER else value > best


Translate = Callable[..., torch.Tensor]  # images, batch_size, device -> translations (gantrain/test_time.py)


def _translation_report(n: int, generator: str) -> dict:
    return {
        "metrics": {},
        "floor": {},
        "protocol": {
            "num_samples": n,
            "images": "the first N held-out pairs (val/, else test/) resized, no augmentation",
            "generator": generator,
        },
    }


def evaluate_paired(translate: Translate, source, cfg: EvalConfig, device, generator: str) -> dict:
    """pix2pix: L1, PSNR and SSIM of G(A) against B over the first N validation pairs, and
    FID of G(A) against B when Inception weights are at hand (``_add_fid``). ``translate``
    runs G as the run's ``model.test_mode`` says; ``generator`` describes that for the
    report's protocol."""
    from gantrain.metrics.paired import paired_sums

    fixed = source.fixed_batch(cfg.num_samples)
    A, B = fixed["A"], fixed["B"]
    report = _translation_report(len(A), generator)
    fake_B = translate(A, cfg.batch_size, device)
    report["metrics"].update({key: value / len(A) for key, value in paired_sums(fake_B, B).items()})
    return _add_fid(report, {"fid": (fake_B, B)}, cfg, device)


def evaluate_unpaired(
    translate_AB: Translate, translate_BA: Translate, source, cfg: EvalConfig, device, generator: str
) -> dict:
    """CycleGAN: the cycle L1 of both domains on the test images (halved: images span
    [-1, 1]), and FID of each translation against its target domain when Inception
    weights are at hand."""
    fixed = source.fixed_batch(cfg.num_samples)
    A, B, bs = fixed["A"], fixed["B"], cfg.batch_size
    report = _translation_report(len(A), generator)
    fake_B, fake_A = translate_AB(A, bs, device), translate_BA(B, bs, device)
    report["metrics"]["cycle_l1_A"] = (translate_BA(fake_B, bs, device) - A).abs().mean().item() / 2
    report["metrics"]["cycle_l1_B"] = (translate_AB(fake_A, bs, device) - B).abs().mean().item() / 2
    return _add_fid(report, {"fid_AB": (fake_B, B), "fid_BA": (fake_A, A)}, cfg, device)


def _add_fid(report: dict, targets: dict[str, tuple[torch.Tensor, torch.Tensor]], cfg: EvalConfig, device) -> dict:
    """FID of each (fake, real) pair when Inception weights are at hand
    (``eval.inception_weights``, or torch's cache), else the report says it skipped it."""
    from gantrain.metrics.inception import inception_metrics
    from gantrain.metrics.inception_weights import cached_weights_path

    if cfg.inception_weights or cached_weights_path().is_file() or "inception" in cfg.metrics:
        for name, (fake, real) in targets.items():
            scores = inception_metrics(
                [real],
                [fake],
                metrics=("fid",),
                weights_path=cfg.inception_weights,
                device=device,
                option="inception_weights",
            )
            report["protocol"]["inception"] = scores.pop("protocol")
            report["metrics"][name] = scores["fid"]
    else:
        report["protocol"]["inception"] = "skipped: no Inception weights (set eval.inception_weights)"
    return report
