"""Every check of a composed config that needs neither data nor files: keys, types,
ranges, and the model's own options. The CLI runs ``check_config`` before Hydra creates
a run directory, so a mistake costs nothing; ``build.py`` runs it again (configs also
come from run directories) and adds the checks that need the built objects
(``check_penalty_norm``, ``warn_clipping_with_momentum``).

Each kind of value is checked once, where its kind is declared: bounds annotated on the
parameters' types (``PositiveInt``, ``Weight``, ... in ``checks.py``, read by
``validate.py``), and no NaN or infinity in any value. What a type cannot say is
checked here: keys nothing reads, metric names, the optimizers' own ranges (each is
made once on a one-element dummy parameter), and a size that cannot fit in memory
(``size_check.py``). ``trainer.lr_decay_start`` at or past ``trainer.steps`` is allowed
on purpose: the schedule is relative to the last step, and a run resumed with more
steps reaches it (the experiments' short smoke runs do this too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from torch import nn

from gantrain.augment.base import Augmentation
from gantrain.checks import PositiveInt, at_least
from gantrain.engine.speed import SpeedConfig
from gantrain.engine.trainer_config import TrainerConfig
from gantrain.errors import OptionError, UserError, keyed
from gantrain.metrics.evaluate import FAMILIES, EvalConfig
from gantrain.models.base import GANModel
from gantrain.size_check import check_fits_in_memory
from gantrain.validate import check_all_targets, check_call, check_value, resolve_target, to_dataclass

log = logging.getLogger("gantrain")

# Keys of the data node that configure batching, not the dataset builder. max_images limits
# the training stream only (data/subset.py): the builder, and so the evaluation, the tools
# and gantrain-eval, see the whole dataset.
LOADER_KEYS = ("batch_size", "num_workers", "max_images")
# Keys of the model node that hold its nets' configs, not constructor options.
NET_KEYS = ("generator", "discriminator")
# Net arguments that come from the data (image GANs, then translation nets).
NET_SHAPE_ARGS = ("channels", "image_size", "num_classes", "in_channels", "out_channels")
# The keys of the root config (conf/train.yaml) and of the optim group: a `+key=...` that
# adds anything else would be read by nothing.
ROOT_KEYS = (
    "data",
    "model",
    "loss",
    "optim",
    "trainer",
    "eval",
    "speed",
    "augment",
    "seed",
    "device",
    "resume",
    "init_from",
)
# The root values that are not nodes and that every config has (augment and init_from came
# later: the configs of older runs lack them).
REQUIRED_VALUES = ("seed", "device", "resume")
OPTIM_SIDES = ("g", "d")
# The metrics an evaluation reports, by family (image GANs: metrics/judge.py and
# metrics/inception.py) and for the translators (metrics/evaluate.py: pix2pix, CycleGAN).
# Both families also report precision, recall, density and coverage (metrics/prdc.py).
FAMILY_METRICS = {
    "classifier": (
        "classifier_fid",
        "classifier_score",
        "class_accuracy",
        *(f"classifier_{name}" for name in ("precision", "recall", "density", "coverage")),
    ),
    "inception": ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "density", "coverage"),
}
TRANSLATION_METRICS = ("l1", "psnr", "ssim", "fid", "fid_AB", "fid_BA", "cycle_l1_A", "cycle_l1_B")


@dataclass(frozen=True)
class LoaderConfig:
    batch_size: int = 64
    num_workers: int = 0
    # Train on a seeded random subset of this many images (of each domain, for unpaired
    # data); None: all of them. Not below batch_size: every batch comes from the subset.
    max_images: PositiveInt | None = None

    def __post_init__(self) -> None:
        at_least("batch_size", self.batch_size, 1)
        at_least("num_workers", self.num_workers, 0)
        if self.max_images is None:
            return
        at_least("max_images", self.max_images, 1)
        if self.max_images < self.batch_size:
            raise OptionError(
                "max_images",
                f"max_images={self.max_images} is fewer than batch_size={self.batch_size}: every batch is "
                f"drawn from the subset; raise max_images or lower batch_size",
                also=("batch_size",),
            )


def plain(cfg: DictConfig) -> dict:
    """A config node as plain Python values, every interpolation resolved."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # a missing value or a broken interpolation
        raise UserError(f"config value cannot be resolved: {str(exc).splitlines()[0]}") from None


def model_class(node: dict) -> type[GANModel]:
    """The model class a model node's ``_target_`` names; it must follow the contract."""
    target = resolve_target(node, "model")
    if not (isinstance(target, type) and issubclass(target, GANModel)):
        raise UserError(
            f"model._target_={node['_target_']} is not a gantrain model: point it at a subclass "
            f"of gantrain.models.base.GANModel (gantrain.models.gan.GAN, ...)"
        )
    return target


def model_options(node: dict) -> dict:
    """The model node without its nets' configs: what the model class's checks read."""
    return {key: value for key, value in node.items() if key not in NET_KEYS}


def check_known_keys(tree: dict) -> None:
    """Top-level keys and optimizer sides that nothing reads (``+baz=3``, ``+optim.x=...``);
    the nodes below are checked against their targets' signatures and dataclasses."""
    for path in ("data", "model", "model.generator", "model.discriminator", "loss", "optim", "optim.g", "optim.d"):
        node = tree
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise UserError(
                f"{path}={node!r} is not a config node: set the keys under it ({path}.<key>=...), not {path}"
            )
    for path in ("trainer", "eval", "speed"):
        if not isinstance(tree.get(path), dict):
            raise UserError(f"{path}={tree.get(path)!r} is not a config node: set the keys under it, not {path}")
    for key in REQUIRED_VALUES:
        if key not in tree:
            raise UserError(f"{key} is required: add {key}=... (or leave it as conf/train.yaml sets it)")
    for key in tree:
        if key not in ROOT_KEYS:
            raise UserError(
                f"unknown option {key}: nothing reads it; the config's top-level keys are {', '.join(ROOT_KEYS)}"
            )
    for side in tree["optim"]:
        if side not in OPTIM_SIDES:
            raise UserError(f"unknown option optim.{side}: optim takes g (the generator's) and d (the discriminator's)")


def check_augment(tree: dict) -> None:
    """``augment``: a gantrain augmentation whose options fit its signature (and its
    pipeline's, for ADA), and that the loss can drive: ADA reads D's real scores against
    the loss's decision boundary, which a Wasserstein critic does not have."""
    node = tree.get("augment") or {}
    if not node:
        return
    cls = check_call(node, "augment", provided=("channels",))
    if not (isinstance(cls, type) and issubclass(cls, Augmentation)):
        raise UserError(
            f"augment._target_={node['_target_']} is not an augmentation of gantrain.augment: "
            f"choose augment=diffaugment, augment=ada or augment=none"
        )
    pipeline = node.get("pipeline")
    if isinstance(pipeline, dict) and "_target_" in pipeline:
        check_call(pipeline, "augment.pipeline", provided=("channels",))
    loss = resolve_target(tree["loss"], "loss")
    if cls.needs_decision_boundary and getattr(loss, "decision_boundary", 0.0) is None:
        raise UserError(
            f"augment={cls.__name__.lower()} adjusts its probability from the sign of D's scores on real "
            f"images, and a Wasserstein critic's scores have no sign that means real or fake: use "
            f"augment=diffaugment with loss={'wgan_gp' if tree['loss'].get('gp_weight') else 'wgan'}, "
            f"or loss=bce, hinge or lsgan"
        )


# What torch.optim.Optimizer says, once a subclass's own checks passed, of no parameters.
_NO_PARAMETERS = "empty parameter list"


def check_optimizer(node: dict, path: str) -> None:
    """The optimizer's own range checks (lr, betas, eps, weight decay, momentum, ...): the
    same class and options, given no parameters. torch's optimizers check their options in
    their own ``__init__``, before ``Optimizer.__init__`` refuses the empty list; given
    even one parameter, ``add_param_group`` (wrapped in ``torch._disable_dynamo``) would
    import TorchDynamo, seconds on a CPU that a config error must not pay. The checks
    torch makes after that point (``fused`` with ``foreach``) are refused by
    ``build.build_optimizer`` in one line too."""
    options = {k: v for k, v in node.items() if k not in ("_target_", "_partial_")}
    if isinstance(options.get("betas"), list):  # as build_optimizer passes them
        options["betas"] = tuple(float(b) for b in options["betas"])
    try:
        resolve_target(node, path)([], **options)
    except (ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, ValueError) and _NO_PARAMETERS in str(exc):
            return  # every option passed the class's own checks
        raise UserError(f"{path} was refused by {node['_target_']}: {str(exc).splitlines()[0]}") from None


def check_best_metric(eval_cfg: EvalConfig) -> None:
    """``eval.best`` names a metric the evaluation reports (of the families in
    ``eval.metrics``, or a translator's), and is only read when the run evaluates
    (``eval.every`` > 0)."""
    if eval_cfg.best == "auto":
        return
    families = FAMILIES if "auto" in eval_cfg.metrics else [m for m in eval_cfg.metrics if m in FAMILIES]
    names = list(dict.fromkeys([n for family in families for n in FAMILY_METRICS[family]] + list(TRANSLATION_METRICS)))
    if eval_cfg.best not in names:
        raise UserError(
            f"eval.best={eval_cfg.best!r} is not a metric that eval.metrics=[{','.join(eval_cfg.metrics)}] reports: "
            f"use auto or one of {', '.join(names)}"
        )
    if not eval_cfg.every:
        raise UserError(
            f"eval.best={eval_cfg.best} picks checkpoints/best.pt among the evaluations during training, "
            f"and eval.every=0 makes none: set eval.every=N, or leave eval.best=auto"
        )


def check_config(cfg: DictConfig) -> None:
    """Every check that needs neither data nor files: keys, types, ranges, sizes."""
    tree = plain(OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]))
    check_all_targets(tree)
    check_known_keys(tree)
    check_value("seed", tree["seed"], int)
    check_value("device", tree["device"], str)
    check_value("resume", tree["resume"], str | None)
    check_value("init_from", tree.get("init_from"), str | None)
    data = dict(tree["data"])
    to_dataclass(LoaderConfig, {k: data.pop(k) for k in LOADER_KEYS if k in data}, "data")
    check_call(data, "data")
    model = tree["model"]
    cls = model_class(model)
    options = model_options(model)
    check_call(
        {k: v for k, v in options.items() if k not in cls.build_options}, "model", provided=(*cls.built_args, "loss")
    )
    with keyed("model"):
        cls.check_options(options)
    check_call(model["generator"], "model.generator", provided=("z_dim",) + NET_SHAPE_ARGS)
    check_call(model["discriminator"], "model.discriminator", provided=NET_SHAPE_ARGS)
    check_call(tree["loss"], "loss")
    check_augment(tree)
    for side in ("g", "d"):
        optim = tree["optim"][side]
        check_call(optim, f"optim.{side}", provided=("params",))
        if "lr" in optim:
            at_least(f"optim.{side}.lr", optim["lr"], 0, strict=True)
        check_optimizer(optim, f"optim.{side}")
    trainer = to_dataclass(TrainerConfig, tree["trainer"], "trainer")
    check_best_metric(to_dataclass(EvalConfig, tree["eval"], "eval"))
    to_dataclass(SpeedConfig, tree["speed"], "speed")
    check_fits_in_memory(tree, trainer.num_samples)


def _norm_choices(D: nn.Module) -> tuple[str, ...]:
    """The choices of ``model.discriminator.norm`` the D's nets declare (``norm_choices``)."""
    for module in D.modules():
        choices = getattr(type(module), "norm_choices", None)  # a class attribute of gantrain's D nets
        if choices:
            return tuple(choices)
    return ()


def check_penalty_norm(loss, D: nn.Module) -> None:
    """The gradient penalty and R1 are per-sample quantities; BatchNorm makes each
    sample's score depend on the whole batch, so they would constrain the wrong thing."""
    batch_norms = [m for m in D.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    penalties = [name for name, weight in (("the gradient penalty", loss.gp_weight), ("R1", loss.r1_weight)) if weight]
    if penalties and batch_norms:
        options = " and ".join(f"loss.{o}" for o in ("gp_weight", "r1_weight") if getattr(loss, o))
        first, *rest = [kind for kind in _norm_choices(D) if kind != "batch"] or ["none"]
        norms = f"{first} (or {', '.join(rest)})" if rest else first
        raise UserError(
            f"{' and '.join(penalties)} ({options} > 0) needs a discriminator without "
            f"BatchNorm: set model.discriminator.norm={norms}"
        )


def warn_clipping_with_momentum(loss, opt_d) -> None:
    """Arjovsky et al. (2017) found momentum optimizers unstable for a clipped critic and
    used RMSprop; it still trains, so this is a warning, not an error."""
    betas = opt_d.param_groups[0].get("betas")
    if getattr(loss, "clip", None) is not None and betas and betas[0] > 0:  # only WGAN's loss clips
        log.warning(
            "loss.clip with %s(betas=%s) for the critic: the WGAN paper found momentum "
            "unstable with weight clipping; optim=rmsprop follows the paper",
            type(opt_d).__name__,
            tuple(betas),
        )
