"""Every check of a composed config that needs neither data nor files: keys, types,
ranges, and the model's own options. The CLI runs ``check_config`` before Hydra creates
a run directory, so a mistake costs nothing; ``build.py`` runs it again (configs also
come from run directories) and adds the checks that need the built objects
(``check_penalty_norm``, ``warn_clipping_with_momentum``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from torch import nn

from gantrain.checks import at_least
from gantrain.engine.loop import TrainerConfig
from gantrain.engine.speed import SpeedConfig
from gantrain.errors import UserError, keyed
from gantrain.metrics.evaluate import EvalConfig
from gantrain.models.base import GANModel
from gantrain.validate import check_all_targets, check_call, check_value, resolve_target, to_dataclass

log = logging.getLogger("gantrain")

# Keys of the data node that configure batching, not the dataset builder.
LOADER_KEYS = ("batch_size", "num_workers")
# Keys of the model node that hold its nets' configs, not constructor options.
NET_KEYS = ("generator", "discriminator")
# Net arguments that come from the data (image GANs, then translation nets).
NET_SHAPE_ARGS = ("channels", "image_size", "num_classes", "in_channels", "out_channels")


@dataclass(frozen=True)
class LoaderConfig:
    batch_size: int = 64
    num_workers: int = 0

    def __post_init__(self) -> None:
        at_least("batch_size", self.batch_size, 1)
        at_least("num_workers", self.num_workers, 0)


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


def check_config(cfg: DictConfig) -> None:
    """Every check that needs neither data nor files: keys, types, ranges."""
    tree = plain(OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]))
    check_all_targets(tree)
    check_value("seed", tree["seed"], int)
    check_value("device", tree["device"], str)
    check_value("resume", tree["resume"], str | None)
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
    for side in ("g", "d"):
        optim = tree["optim"][side]
        check_call(optim, f"optim.{side}", provided=("params",))
        if "lr" in optim:
            at_least(f"optim.{side}.lr", optim["lr"], 0, strict=True)
    to_dataclass(TrainerConfig, tree["trainer"], "trainer")
    to_dataclass(EvalConfig, tree["eval"], "eval")
    to_dataclass(SpeedConfig, tree["speed"], "speed")


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
