"""Config and built objects -> the run's health monitor (``health/monitor.py``), for ``build.py``.

What the rules know of the run (``RunContext``), the ``SampleProbe`` of noise models (rank
0 only: it alone logs, and decides), and the DiffAugment that ``on_unhealthy=rollback``
switches on for a D that overfits. The probe's real images are a fixed, seeded batch of the
training stream's images; its held-out images, when ``data.max_images`` left some of the
dataset out of training, a fixed, seeded few hundred of those (Karras et al., 2020, fig. 1:
D's scores on images it never trained on fall away as it overfits); its feature space is
the run's classifier judge when the evaluation has one (``metrics/judge.py``), else D's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gantrain.augment.diffaugment import DiffAugment
from gantrain.data.spec import to_unit_range
from gantrain.engine.trainer_config import TrainerConfig
from gantrain.errors import keyed
from gantrain.health.history import RunContext, lower_is_better
from gantrain.health.monitor import HealthMonitor
from gantrain.health.signals import SampleProbe
from gantrain.metrics.evaluate import families

PROBE_IMAGES = 64  # samples and real images the diversity compares (SampleProbe's num)
HELDOUT_IMAGES = 256  # held-out real images D's held-out accuracy is measured on


def run_context(model, loss, train_source, evaluator, trainer_cfg: TrainerConfig, opt_g, opt_d) -> RunContext:
    metric = evaluator.best if evaluator is not None else None
    augment = type(model.augment).__name__.lower() if model.augment is not None else "none"
    return RunContext(
        noise_model=model.data_kind == "none",
        labelled=bool(train_source.spec.num_classes),
        wasserstein=loss.decision_boundary is None,
        train_images=train_source.spec.size,
        augment=augment,
        lr_g=float(opt_g.param_groups[0]["lr"]),
        lr_d=float(opt_d.param_groups[0]["lr"]),
        eval_metric=metric,
        eval_lower_is_better=lower_is_better(metric) if metric else True,
        steps=trainer_cfg.steps,
    )


def _seeded(positions: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """A fixed ``n`` of ``positions`` (all when fewer), the same for a seed on every machine."""
    order = torch.randperm(len(positions), generator=torch.Generator().manual_seed(seed))
    return positions[order[:n]].sort().values


def _images(source, index: torch.Tensor, conditional: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    with keyed("data"):  # a file that fails to decode names data.on_bad_file, as the stream's would
        images, labels = source.images_at(index)
    return to_unit_range(images), labels if conditional else None


def run_judge(evaluator, source, device: torch.device):
    """The classifier judge the evaluator scores with (MNIST-family data), on ``device``;
    None when it has none: ``metrics/score.py``'s ``dataset_judge``, from the evaluation's cache."""
    eval_cfg = getattr(evaluator, "cfg", None)
    if eval_cfg is None or "classifier" not in families(eval_cfg, source.spec):
        return None
    from gantrain.metrics.score import dataset_judge

    # Training the judge (a cache miss) seeds torch's global RNG: under fork_rng, as the
    # evaluator trains it, so that a run's random streams do not depend on the cache.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return dataset_judge(source, eval_cfg.cache_dir)[2].to(device)


def sample_probe(
    model, loss, source, train_source, subset: dict | None, evaluator, device, seed: int, conditional: bool
):
    """The run's ``SampleProbe``; None for translators (no noise to sample from).
    ``conditional``: G and D take class labels (the generator's contract says so)."""
    if model.data_kind != "none":
        return None
    size = train_source.spec.size
    real, real_labels = _images(train_source, _seeded(torch.arange(size), PROBE_IMAGES, seed), conditional)
    heldout = heldout_labels = None
    if subset is not None and "indices" in subset:  # data.max_images: the images training never sees
        kept = torch.zeros(subset["size"], dtype=torch.bool)
        kept[torch.as_tensor(subset["indices"], dtype=torch.long)] = True
        left_out = torch.nonzero(~kept).flatten()
        if len(left_out) > 1:
            heldout, heldout_labels = _images(source, _seeded(left_out, HELDOUT_IMAGES, seed + 1), conditional)
    return SampleProbe(
        model,
        real,
        run_judge(evaluator, source, device),
        train_source.spec.num_classes,
        heldout,
        loss,
        num=min(PROBE_IMAGES, len(real)),
        seed=seed,
        real_labels=real_labels,
        heldout_labels=heldout_labels,
    )


def build_health(
    trainer_cfg: TrainerConfig,
    run_dir: str | Path,
    built: tuple,
    data: tuple,
    evaluator,
    parallel,
    device: torch.device,
    seed: int,
    conditional: bool,
) -> HealthMonitor:
    """The monitor of ``trainer.on_unhealthy``. ``built``: the model, its loss and the two
    optimizers (G's, D's); ``data``: the whole data source, the training stream's source
    (``data.max_images``) and what that kept (None: everything)."""
    model, loss, opt_g, opt_d = built
    source, train_source, subset = data
    context = run_context(model, loss, train_source, evaluator, trainer_cfg, opt_g, opt_d)
    probe = None
    if parallel.is_main:  # rank 0 alone logs and decides
        probe = sample_probe(model, loss, source, train_source, subset, evaluator, device, seed, conditional)
    channels = train_source.spec.channels

    def make_augment() -> DiffAugment:
        # DiffAugment's defaults are conf/augment/diffaugment.yaml's: the paper's small-data
        # policy, color, translation and cutout.
        return DiffAugment(channels=channels)

    return HealthMonitor(context, trainer_cfg.on_unhealthy, run_dir, probe, make_augment)
