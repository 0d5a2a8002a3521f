"""Config -> objects, in one place: data -> DataSpec -> nets -> model -> optimizers -> loop.

This is the only module that calls ``hydra.utils.instantiate``. Everything below it
gets plain arguments. Every check that needs no data runs in ``check_config`` (the CLI
calls it before Hydra creates a run directory); checks that need the data (image
size, class labels) run in ``build_trainer`` before any training starts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf
import torch
from torch import nn

from gantrain.engine.checkpoint import exported_generator, last_checkpoint, load_checkpoint, remove_stale_temporaries
from gantrain.engine import distributed
from gantrain.engine.logger import RunLogger, SilentLogger
from gantrain.engine.loop import Trainer, TrainerConfig
from gantrain.engine.runtime import environment, seed_everything, select_device
from gantrain.engine.speed import Speed, SpeedConfig
from gantrain.errors import UserError, keyed
from gantrain.metrics.evaluate import EvalConfig, GeneratorEvaluator
from gantrain.validate import at_least, check_all_targets, check_call, check_value, resolve_target, to_dataclass

log = logging.getLogger("gantrain")

# Keys of the data node that configure batching, not the dataset builder.
LOADER_KEYS = ("batch_size", "num_workers")
# Net arguments that come from the data (image GANs, then translation nets).
NET_SHAPE_ARGS = ("channels", "image_size", "num_classes", "in_channels", "out_channels")
MODEL_BUILD_KEYS = ("generator", "discriminator", "conditional")
# The keys a user changes for the net arguments that come from the data.
SHAPE_KEYS = {"channels": "data.channels", "image_size": "data.image_size", "num_classes": "model.conditional",
              "in_channels": "data.channels", "out_channels": "data.channels", "z_dim": "model.z_dim"}


@dataclass(frozen=True)
class LoaderConfig:
    batch_size: int = 64
    num_workers: int = 0

    def __post_init__(self) -> None:
        at_least("batch_size", self.batch_size, 1)
        at_least("num_workers", self.num_workers, 0)


def _plain(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # a missing value or a broken interpolation
        raise UserError(f"config value cannot be resolved: {str(exc).splitlines()[0]}") from None


def check_config(cfg: DictConfig) -> None:
    """Every check that needs neither data nor files: keys, types, ranges."""
    plain = _plain(OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]))
    check_all_targets(plain)
    check_value("seed", plain["seed"], int)
    check_value("device", plain["device"], str)
    check_value("resume", plain["resume"], str | None)
    data = dict(plain["data"])
    to_dataclass(LoaderConfig, {k: data.pop(k) for k in LOADER_KEYS if k in data}, "data")
    check_call(data, "data")
    model = plain["model"]
    check_call({k: v for k, v in model.items() if k not in MODEL_BUILD_KEYS}, "model",
               provided=("generator", "discriminator", "loss", "num_classes", "image_shape"))
    check_value("model.conditional", model.get("conditional", False), bool)
    if "z_dim" in model:
        at_least("model.z_dim", model["z_dim"], 1)
    check_call(model["generator"], "model.generator", provided=("z_dim",) + NET_SHAPE_ARGS)
    check_call(model["discriminator"], "model.discriminator", provided=NET_SHAPE_ARGS)
    check_call(plain["loss"], "loss")
    for side in ("g", "d"):
        optim = plain["optim"][side]
        check_call(optim, f"optim.{side}", provided=("params",))
        if "lr" in optim:
            at_least(f"optim.{side}.lr", optim["lr"], 0, strict=True)
    to_dataclass(TrainerConfig, plain["trainer"], "trainer")
    to_dataclass(EvalConfig, plain["eval"], "eval")
    to_dataclass(SpeedConfig, plain["speed"], "speed")


def instantiate(node: DictConfig, **kwargs):
    """``hydra.utils.instantiate``, letting our own ``UserError`` through unwrapped
    (Hydra wraps whatever a target raises in a multi-line ``InstantiationException``).
    Every ``_target_`` in the node is checked against the allow-list first: configs
    also come from run directories (resume, the tools), not only from ``check_config``."""
    check_all_targets(_plain(node) if isinstance(node, DictConfig) else node)
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def _without(node: DictConfig, keys) -> DictConfig:
    """The node, resolved against the whole config, minus the keys build.py handles."""
    return OmegaConf.create({k: v for k, v in _plain(node).items() if k not in keys})


def build_nets(model_cfg: DictConfig, spec: dict) -> dict:
    """The nets of the model node for data of this spec (a dict of DataSpec's fields):
    the constructor arguments of the model class besides the loss. Image GANs get
    (channels, image_size, num_classes); translation models say what their nets need
    (``nets()``: pix2pix's D sees A and B stacked, CycleGAN has two of each)."""
    model_cls = resolve_target(dict(model_cfg), "model")
    if getattr(model_cls, "pairing", "none") != "none":
        make_g = _keyed_factory(instantiate(model_cfg.generator, _partial_=True), "model.generator")
        make_d = _keyed_factory(instantiate(model_cfg.discriminator, _partial_=True), "model.discriminator")
        return model_cls.nets(make_g, make_d, spec["channels"], spec["image_size"])
    shape = {"channels": spec["channels"], "image_size": spec["image_size"],
             "num_classes": spec["num_classes"] if model_cfg.get("conditional", False) else 0}
    with keyed("model.generator", SHAPE_KEYS):
        generator = instantiate(model_cfg.generator, z_dim=model_cfg.z_dim, **shape)
    with keyed("model.discriminator", SHAPE_KEYS):
        discriminator = instantiate(model_cfg.discriminator, **shape)
    return {"generator": generator, "discriminator": discriminator, "num_classes": shape["num_classes"]}


def _keyed_factory(make, prefix: str):
    """A net factory whose option errors name ``prefix``'s keys."""
    def keyed_make(**kwargs):
        with keyed(prefix, SHAPE_KEYS):
            return make(**kwargs)
    return keyed_make


def _check_data_fits_model(model_cfg: DictConfig, spec) -> None:
    needs = getattr(resolve_target(dict(model_cfg), "model"), "pairing", "none")
    if needs != spec.pairing:
        kinds = {"none": "single images (mnist, celeba, folder, ...)",
                 "paired": "paired A|B images (data=facades or data=paired_folder)",
                 "unpaired": "two unpaired domains (data=unpaired_folder)"}
        raise UserError(f"this model trains on {kinds[needs]}, but {spec.name or 'the data'} holds "
                        f"{kinds[spec.pairing]}: choose a matching data= or model=")
    if model_cfg.get("conditional", False) and not spec.num_classes:
        raise UserError(f"model.conditional=true needs class labels, but {spec.name} has none: "
                        f"use a labelled dataset (mnist, fashion_mnist, a folder of class subfolders, "
                        f"celeba with data.label_attrs=[Smiling]) or model.conditional=false")


def load_generator(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The generator a run exported (``checkpoints/generator.pt``: the EMA weights when
    the run kept an EMA), rebuilt from the run's own config, in eval mode. Returns it
    with the export's record (step, data_spec, config, ...)."""
    path = exported_generator(run_dir)
    if not path.is_file():
        raise UserError(f"no exported generator at {path}: point at a gantrain run directory "
                        f"that has saved a checkpoint")
    state = load_checkpoint(path, map_location=device)
    G = build_nets(OmegaConf.create(state["config"]).model, state["data_spec"])["generator"]
    G.load_state_dict(state["generator"])
    return G.to(device).eval(), state


def build_source(cfg: DictConfig):
    """The dataset of the data node (without the batching keys)."""
    with keyed("data"):
        return instantiate(_without(cfg.data, LOADER_KEYS))


def build_evaluator(cfg: DictConfig, source, device) -> GeneratorEvaluator:
    eval_cfg = to_dataclass(EvalConfig, _plain(cfg.eval), "eval")
    if source.spec.pairing != "none":
        raise UserError("eval.every and gantrain-eval score image GANs; pix2pix and CycleGAN log their "
                        "validation metrics every trainer.sample_every steps: set eval.every=0")
    num_classes = source.spec.num_classes if cfg.model.get("conditional", False) else 0
    with keyed("eval"):
        return GeneratorEvaluator(eval_cfg, source, cfg.model.z_dim, num_classes, device, cfg.seed)


def _other_norms(D: nn.Module) -> str:
    """The choices of ``model.discriminator.norm`` other than BatchNorm for this D."""
    from gantrain.nets.dcgan import NORMS, DCGANDiscriminator
    from gantrain.nets.norms import NORMS_2D

    # DCGAN's D also takes layer norm; the image-to-image nets take those of nets/norms.py.
    kinds = NORMS if any(isinstance(m, DCGANDiscriminator) for m in D.modules()) else NORMS_2D
    first, *rest = [kind for kind in kinds if kind != "batch"]
    return f"{first} (or {', '.join(rest)})"


def _check_penalty_norm(loss, D, norms: str) -> None:
    """The gradient penalty and R1 are per-sample quantities; BatchNorm makes each
    sample's score depend on the whole batch, so they would constrain the wrong thing.
    ``norms``: the other choices of ``model.discriminator.norm`` for this model's D."""
    batch_norms = [m for m in D.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    penalties = [name for name, option in (("the gradient penalty", "gp_weight"), ("R1", "r1_weight"))
                 if getattr(loss, option, 0)]
    if penalties and batch_norms:
        options = " and ".join(f"loss.{o}" for o in ("gp_weight", "r1_weight") if getattr(loss, o, 0))
        raise UserError(f"{' and '.join(penalties)} ({options} > 0) needs a discriminator without "
                        f"BatchNorm: set model.discriminator.norm={norms}")


def build_optimizer(node: DictConfig, params, path: str, speed: Speed | None = None) -> torch.optim.Optimizer:
    """The optimizer of one side. ``betas=[0,0.9]`` on the command line arrives as an int
    and a float, which torch's Adam refuses; betas are made floats. What torch still
    refuses (a negative eps, ...) becomes one line naming the node. ``speed``: adds
    ``fused=True`` where the optimizer has a fused kernel (``speed.fused_optim``)."""
    plain = _plain(node)
    if isinstance(plain.get("betas"), (list, tuple)):
        plain["betas"] = [float(b) for b in plain["betas"]]
    if speed is not None:
        plain.update(speed.optimizer_options(resolve_target(plain, path), plain))
    try:
        return instantiate(OmegaConf.create(plain))(params=params)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path} was refused by {plain['_target_']}: {str(exc).splitlines()[0]}") from None


def _warn_clipping_with_momentum(loss, opt_d) -> None:
    """Arjovsky et al. (2017) found momentum optimizers unstable for a clipped critic and
    used RMSprop; it still trains, so this is a warning, not an error."""
    betas = opt_d.param_groups[0].get("betas")
    if getattr(loss, "clip", None) is not None and betas and betas[0] > 0:
        log.warning("loss.clip with %s(betas=%s) for the critic: the WGAN paper found momentum "
                    "unstable with weight clipping; optim=rmsprop follows the paper",
                    type(opt_d).__name__, tuple(betas))


def build_trainer(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> Trainer:
    check_config(cfg)
    parallel = distributed.current()
    device = select_device(cfg.device, parallel.local_rank if parallel.world > 1 else None)
    parallel.use_device(device)
    speed = to_dataclass(SpeedConfig, _plain(cfg.speed), "speed").resolve(device)
    speed.configure_backends()
    seed_everything(cfg.seed)  # the same on every process: identical initial weights

    loader = to_dataclass(LoaderConfig, {k: cfg.data[k] for k in LOADER_KEYS if k in cfg.data}, "data")
    source = parallel.node_leaders_first(lambda: build_source(cfg))
    spec = source.spec
    with keyed("data"):
        stream = source.stream(loader.batch_size, cfg.seed, device, loader.num_workers,
                               shard=(parallel.rank, parallel.world))

    _check_data_fits_model(cfg.model, spec)
    data_spec = {"channels": spec.channels, "image_size": spec.image_size, "num_classes": spec.num_classes,
                 "name": spec.name, "class_names": list(spec.class_names), "pairing": spec.pairing}
    nets = build_nets(cfg.model, data_spec)
    with keyed("loss"):
        loss = instantiate(cfg.loss)
    _check_penalty_norm(loss, nets["discriminator"], _other_norms(nets["discriminator"]))
    with keyed("model"):
        model = instantiate(_without(cfg.model, MODEL_BUILD_KEYS), **nets, loss=loss).to(device)
    speed.prepare_nets(model)
    parallel.broadcast_nets(model)
    opt_g = build_optimizer(cfg.optim.g, model.G.parameters(), "optim.g", speed)
    opt_d = build_optimizer(cfg.optim.d, model.D.parameters(), "optim.d", speed)
    _warn_clipping_with_momentum(loss, opt_d)

    trainer_cfg = to_dataclass(TrainerConfig, _plain(cfg.trainer), "trainer")
    checkpoint = None
    if cfg.resume:
        def read() -> dict:
            remove_stale_temporaries(cfg.resume)
            return load_checkpoint(last_checkpoint(cfg.resume))

        checkpoint = parallel.from_rank0(read)
        if checkpoint["step"] >= trainer_cfg.steps:
            raise UserError(f"run {cfg.resume} already finished at step {checkpoint['step']}: to "
                            f"train further, resume with trainer.steps=N, N > {checkpoint['step']}")
    env = environment(device)
    env["fast path"] = speed.summary()
    env["processes"] = str(parallel.world)
    meta = {
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "overrides": list(overrides),
        "data_spec": data_spec,
        "env": env,
    }
    if parallel.is_main:
        logger = RunLogger(run_dir, purge_step=checkpoint["step"] if checkpoint else None)
    else:
        logger = SilentLogger(run_dir)
    if spec.pairing == "none":
        fixed, validation = model.fixed_inputs(trainer_cfg.num_samples, cfg.seed), None
    else:  # translation: grids and validation metrics from the held-out pairs
        fixed = source.fixed_batch(trainer_cfg.num_samples)
        validation = (lambda: source.validation_batches(loader.batch_size)) if hasattr(model, "validate") else None
    evaluator = build_evaluator(cfg, source, device) if cfg.eval.every and parallel.is_main else None
    if parallel.rank:  # each process its own noise
        seed_everything(cfg.seed + 1_000_003 * parallel.rank)
    trainer = Trainer(model, opt_g, opt_d, stream, logger, trainer_cfg, device, meta, fixed, validation, evaluator,
                      speed=speed, parallel=parallel, eval_every=cfg.eval.every)
    if checkpoint:
        trainer.load_state_dict(checkpoint)
    if speed.compile:
        trainer.compile()
    return trainer


# Settings that say where things are or how they are shown, not what is trained.
_NOT_HPARAMS = ("data.root", "data.path", "data.num_workers", "data.cache", "data.cache_dir", "trainer.progress", "trainer.log_every",
                "trainer.sample_every", "trainer.checkpoint_every", "trainer.num_samples", "eval.cache_dir",
                "eval.inception_weights", "eval.batch_size")


def hparams_of(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The run's settings as flat ``group.key`` hyperparameters (numbers, strings, booleans;
    lists and nulls as text), for TensorBoard's HParams tab."""
    flat: dict[str, float | int | str | bool] = {"seed": cfg.seed}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}")
        elif prefix not in _NOT_HPARAMS:
            flat[prefix] = node if isinstance(node, (int, float, str, bool)) else json.dumps(node)

    for group in ("data", "model", "loss", "optim", "trainer", "eval"):
        walk(_plain(cfg[group]), group)
    return flat


def metric_tags(run_dir: Path, logged: set[str]) -> list[str]:
    """Scalars that rank runs: the losses, validation and evaluation metrics, including
    those of the last evaluation report (it may come from before a resume)."""
    tags = {"loss/d", "loss/g"} | {t for t in logged if t.startswith(("eval/", "val/"))}
    reports = sorted((run_dir / "eval").glob("step_*.json"))
    if reports:
        tags |= {f"eval/{name}" for name in json.loads(reports[-1].read_text())["metrics"]}
    return sorted(tags)


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> str:
    """Build everything, record what made the run, train. Returns the loop's status."""
    trainer = build_trainer(cfg, run_dir, overrides)
    spec, env = trainer.meta["data_spec"], trainer.meta["env"]
    counts = {name: sum(p.numel() for p in net.parameters()) for name, net in
              (("G", trainer.model.G), ("D", trainer.model.D))}
    log.info("run directory: %s", Path(run_dir).resolve())
    log.info("data %s: %d channel(s), %dx%d, %d classes%s; G %.2fM params, D %.2fM params; device %s",
             spec["name"], spec["channels"], spec["image_size"], spec["image_size"], spec["num_classes"],
             f", {spec['pairing']}" if spec["pairing"] != "none" else "", counts["G"] / 1e6, counts["D"] / 1e6,
             env["device"])
    if trainer.step:
        log.info("resuming at step %d of %d", trainer.step, trainer.cfg.steps)
    trainer.logger.text("config", "```yaml\n" + trainer.meta["config"] + "\n```", trainer.step)
    trainer.logger.table("environment", env, trainer.step)
    if getattr(trainer.model, "num_classes", 0):  # what each row of the conditional sample grid shows
        names = spec["class_names"] or [str(k) for k in range(spec["num_classes"])]
        trainer.logger.table("classes", {f"row {k}": name for k, name in enumerate(names)}, trainer.step)
    status = trainer.fit()
    trainer.logger.hparams(hparams_of(cfg), metric_tags(Path(run_dir), trainer.logger.scalar_tags))
    trainer.logger.flush()
    log.info("%s at step %d; checkpoint %s", status, trainer.step, last_checkpoint(run_dir))
    trainer.logger.close()
    return status


__all__ = ["build_evaluator", "build_nets", "build_source", "build_trainer", "check_config", "load_generator", "run"]
