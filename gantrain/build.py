"""Config -> objects, in one place: data -> DataSpec -> nets -> model -> optimizers -> loop.

This is the only module that calls ``hydra.utils.instantiate``. Everything below it
gets plain arguments, and knows no config keys: each component is built inside
``keyed(<its node>)``, which gives its option errors the key path the user must change.
The model is known only through its contract (``models/base.py``): its class says what
data it needs, builds its nets from the data spec and its YAML's net factories, and
says how it is evaluated. The checks that need no data live in ``config_check.py``
(the CLI runs them before Hydra creates a run directory); what a run records about
itself, in ``run_record.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from gantrain import init_from
from gantrain.augment.base import Augmentation
from gantrain.config_check import (
    LOADER_KEYS,
    NET_KEYS,
    LoaderConfig,
    check_config,
    check_penalty_norm,
    model_class,
    model_options,
    plain,
    warn_clipping_with_momentum,
)
from gantrain.data.spec import DataSpec
from gantrain.engine import distributed
from gantrain.engine.checkpoint import last_checkpoint, load_checkpoint, remove_stale_temporaries
from gantrain.engine.lock import RunLock
from gantrain.engine.logger import RunLogger, SilentLogger
from gantrain.engine.loop import Trainer, TrainerConfig
from gantrain.engine.runtime import environment, seed_everything, select_device
from gantrain.engine.speed import Speed, SpeedConfig, convolves
from gantrain.errors import UserError, keyed
from gantrain.health_build import build_health
from gantrain.metrics.evaluate import EvalConfig
from gantrain.models.base import GANModel, GeneratorInfo
from gantrain.nets.freeze import trainable_parameters
from gantrain.run_record import hparams_of, metric_tags, record_end, record_start, training_subset
from gantrain.validate import check_all_targets, resolve_target, to_dataclass

log = logging.getLogger("gantrain")

# The keys a user changes for the net arguments that come from the data.
SHAPE_KEYS = {
    "channels": "data.channels",
    "image_size": "data.image_size",
    "num_classes": "model.conditional",
    "in_channels": "data.channels",
    "out_channels": "data.channels",
    "z_dim": "model.z_dim",
}


def instantiate(node: DictConfig, **kwargs):
    """``hydra.utils.instantiate``, letting our own ``UserError`` through unwrapped
    (Hydra wraps whatever a target raises in a multi-line ``InstantiationException``).
    Every ``_target_`` in the node is checked against the allow-list first: configs
    also come from run directories (resume, the tools), not only from ``check_config``."""
    check_all_targets(plain(node) if isinstance(node, DictConfig) else node)
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
    return OmegaConf.create({k: v for k, v in plain(node).items() if k not in keys})


def as_spec(spec: DataSpec | Mapping[str, Any]) -> DataSpec:
    """A ``DataSpec`` from itself or from the dict a checkpoint records (``data_spec``)."""
    if isinstance(spec, DataSpec):
        return spec
    fields = DataSpec.__dataclass_fields__
    return DataSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k in fields})


def spec_record(spec: DataSpec) -> dict:
    """What a checkpoint records of the data: enough to rebuild the nets without it."""
    return {
        "channels": spec.channels,
        "image_size": spec.image_size,
        "num_classes": spec.num_classes,
        "name": spec.name,
        "class_names": list(spec.class_names),
        "pairing": spec.pairing,
    }


def model_of(model_cfg: DictConfig) -> tuple[type[GANModel], dict]:
    """The model node's class (``_target_``) and its options (the node less its nets)."""
    node = plain(model_cfg)
    return model_class(node), model_options(node)


class KeyedStream:
    """A data stream whose option errors name ``data.`` keys also while the loop reads it
    (a file that cannot be decoded with ``data.on_bad_file=fail`` is met then, in a
    DataLoader worker or here), not only while it is built."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.batch_size = stream.batch_size

    def __iter__(self):
        batches = iter(self.stream)
        while True:
            with keyed("data"):
                try:
                    batch = next(batches)
                except StopIteration:
                    return
            yield batch

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)


def _keyed_factory(make, prefix: str):
    """A net factory whose option errors name ``prefix``'s keys (or the data's)."""

    def keyed_make(**kwargs):
        with keyed(prefix, SHAPE_KEYS):
            return make(**kwargs)

    return keyed_make


def build_nets(model_cfg: DictConfig, spec: DataSpec | Mapping[str, Any]) -> dict:
    """The model's data-dependent constructor arguments (its nets, class counts, shapes)
    for data of this spec, from the G and D factories of its YAML."""
    cls, options = model_of(model_cfg)
    make_g = _keyed_factory(instantiate(model_cfg.generator, _partial_=True), "model.generator")
    make_d = _keyed_factory(instantiate(model_cfg.discriminator, _partial_=True), "model.discriminator")
    return cls.build_nets(make_g, make_d, as_spec(spec), options)


def build_model(model_cfg: DictConfig, spec: DataSpec, loss, augment: Augmentation | None = None) -> GANModel:
    """The model, its nets made for data of ``spec``; ``augment``: what D's inputs go through."""
    cls, _ = model_of(model_cfg)
    nets = build_nets(model_cfg, spec)
    with keyed("model"):
        model = instantiate(_without(model_cfg, NET_KEYS + cls.build_options), **nets, loss=loss)
    if augment is not None:
        model.augment = augment
    return model


def build_augment(cfg: DictConfig, spec: DataSpec) -> Augmentation | None:
    """The augmentation of D's inputs (``augment=diffaugment|ada``), for images of the data's
    channels; None for ``augment=none`` (and in the configs of runs from before it existed)."""
    node = cfg.get("augment")
    if not node:
        return None
    # The channels come from the data; ADA's pipeline options sit one level down.
    paths = {"channels": "data.channels"}
    pipeline = node.get("pipeline")
    if isinstance(pipeline, DictConfig):
        paths.update({key: f"augment.pipeline.{key}" for key in pipeline if not key.startswith("_")})
    with keyed("augment", paths):
        return instantiate(node, channels=spec.channels)


def generator_info(model_cfg: DictConfig, spec: Mapping[str, Any]) -> GeneratorInfo:
    """What the G of a run with this model node and data spec maps (for the tools)."""
    cls, options = model_of(model_cfg)
    return cls.generator_info(options, spec)


def build_source(cfg: DictConfig):
    """The dataset of the data node (without the batching keys): the whole dataset, also
    with ``data.max_images`` (only the training stream is limited: ``build_trainer``)."""
    with keyed("data"):
        return instantiate(_without(cfg.data, LOADER_KEYS))


def build_evaluator(cfg: DictConfig, source, device):
    """The model's sample-quality metrics during training (``eval.every`` > 0)."""
    eval_cfg = to_dataclass(EvalConfig, plain(cfg.eval), "eval")
    cls, options = model_of(cfg.model)
    with keyed("eval"):
        return cls.evaluator(eval_cfg, source, options, device, cfg.seed)


def build_optimizer(node: DictConfig, params, path: str, speed: Speed | None = None) -> torch.optim.Optimizer:
    """The optimizer of one side. ``betas=[0,0.9]`` on the command line arrives as an int
    and a float, which torch's Adam refuses; betas are made floats. What torch still
    refuses (a negative eps, ...) becomes one line naming the node. ``speed``: adds
    ``fused=True`` where the optimizer has a fused kernel (``speed.fused_optim``)."""
    options = plain(node)
    if isinstance(options.get("betas"), (list, tuple)):
        options["betas"] = [float(b) for b in options["betas"]]
    if speed is not None:
        options.update(speed.optimizer_options(resolve_target(options, path), options))
    try:
        return instantiate(OmegaConf.create(options))(params=params)
    except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: fused with foreach, ...
        raise UserError(f"{path} was refused by {options['_target_']}: {str(exc).splitlines()[0]}") from None


def nonfinite_fixes(on_nonfinite: str) -> str:
    """What a run stopped by a NaN/Inf should try, in config keys (the loop's guard names none)."""
    fixes = "lower optim.g.lr / optim.d.lr, try loss=wgan_gp or loss=hinge, or add loss.r1_weight=10"
    if on_nonfinite == "rollback":
        return fixes + "; trainer.max_rollbacks was reached"
    return fixes + ", or set trainer.on_nonfinite=rollback to go back to the checkpoint with halved learning rates"


def build_trainer(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> Trainer:
    check_config(cfg)
    parallel = distributed.current()
    device = select_device(cfg.device, parallel.local_rank if parallel.world > 1 else None)
    parallel.use_device(device)
    speed_cfg = to_dataclass(SpeedConfig, plain(cfg.speed), "speed")
    seed_everything(cfg.seed)  # the same on every process: identical initial weights

    loader = to_dataclass(LoaderConfig, {k: cfg.data[k] for k in LOADER_KEYS if k in cfg.data}, "data")
    source = parallel.node_leaders_first(lambda: build_source(cfg))
    # Only the stream sees a data.max_images subset: the evaluator, the sample grids and the
    # validation keep the whole dataset (a G that memorised the subset must not score well).
    train_source, subset = training_subset(source, loader.max_images, cfg.seed, cfg.resume)
    spec = train_source.spec
    with keyed("data"):
        stream = KeyedStream(
            train_source.stream(
                loader.batch_size, cfg.seed, device, loader.num_workers, shard=(parallel.rank, parallel.world)
            )
        )
    stream.subset = subset  # what record_start writes to RUN/data_subset.json
    cls, options = model_of(cfg.model)
    with keyed("model", {"label_attrs": "data.label_attrs"}):  # a model may point at the data's options
        cls.check_data(spec, options)

    with keyed("loss"):
        loss = instantiate(cfg.loss)
    model = build_model(cfg.model, spec, loss, build_augment(cfg, spec)).to(device)
    check_penalty_norm(loss, model.D)
    speed = speed_cfg.resolve(device, cfg.trainer.steps, convolves(model.callable_nets()))
    speed.configure_backends()
    speed.prepare_nets(model)
    parallel.broadcast_nets(model)
    opt_g = build_optimizer(cfg.optim.g, model.G.parameters(), "optim.g", speed)
    opt_d = build_optimizer(cfg.optim.d, trainable_parameters(model.D), "optim.d", speed)  # not Freeze-D's
    warn_clipping_with_momentum(loss, opt_d)

    trainer_cfg = to_dataclass(TrainerConfig, plain(cfg.trainer), "trainer")
    checkpoint = None
    if cfg.resume:

        def read() -> dict:
            remove_stale_temporaries(cfg.resume)
            return load_checkpoint(last_checkpoint(cfg.resume))

        checkpoint = parallel.from_rank0(read)
        if checkpoint["step"] >= trainer_cfg.steps:
            raise UserError(
                f"run {cfg.resume} already finished at step {checkpoint['step']}: to "
                f"train further, resume with trainer.steps=N, N > {checkpoint['step']}"
            )
    # Fine-tuning (init_from.py), before anything is written; not on resume: its checkpoint is newer.
    pretrained = init_from.start_from(cfg, model, spec, parallel) if cfg.get("init_from") and not checkpoint else None
    env = environment(device)
    env["fast path"] = speed.summary()
    if speed.reasons:
        env["fast path: auto left off"] = "; ".join(speed.reasons)
    env["processes"] = str(parallel.world)
    meta = {
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "overrides": list(overrides),
        "data_spec": spec_record(spec),
        "env": env,
    }
    if parallel.is_main:
        logger = RunLogger(run_dir, purge_step=checkpoint["step"] if checkpoint else None)
    else:
        logger = SilentLogger(run_dir)
    fixed = model.fixed_inputs(trainer_cfg.num_samples, cfg.seed, source)
    validation = model.validation(source, loader.batch_size)
    evaluator = build_evaluator(cfg, source, device) if cfg.eval.every and parallel.is_main else None
    data, built = (source, train_source, subset), (model, loss, opt_g, opt_d)
    conditional = generator_info(cfg.model, meta["data_spec"]).num_classes > 0
    health = build_health(trainer_cfg, run_dir, built, data, evaluator, parallel, device, cfg.seed, conditional)
    if parallel.rank:  # each process its own noise
        seed_everything(cfg.seed + 1_000_003 * parallel.rank)
    trainer = Trainer(
        model,
        opt_g,
        opt_d,
        stream,
        logger,
        trainer_cfg,
        device,
        meta,
        fixed,
        validation,
        evaluator,
        speed=speed,
        parallel=parallel,
        eval_every=cfg.eval.every,
        nonfinite_fixes=nonfinite_fixes(trainer_cfg.on_nonfinite),
        health=health,
    )
    if checkpoint:
        trainer.load_state_dict(checkpoint)
    if pretrained:
        init_from.finish(trainer, pretrained, run_dir)
    if speed.compile:
        trainer.compile()
    return trainer


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> str:
    """Build everything, record what made the run, train. Returns the loop's status.

    The run lock (``engine/lock.py``) is taken before anything is read or written in
    ``run_dir``: a second process on a directory that a live one trains is refused
    before it touches the live run's files. Rank 0 holds it for every process."""
    lock = RunLock(run_dir)
    distributed.current().from_rank0(lock.acquire)
    try:
        trainer = build_trainer(cfg, run_dir, overrides)
        info = generator_info(cfg.model, trainer.meta["data_spec"])
        record_start(trainer, run_dir, info.num_classes)
        status = trainer.fit()
        record_end(trainer, cfg, run_dir)
        log.info("%s at step %d; checkpoint %s", status, trainer.step, last_checkpoint(run_dir))
        trainer.logger.close()
        return status
    finally:
        lock.release()


__all__ = [
    "build_evaluator",
    "build_model",
    "build_nets",
    "build_source",
    "build_trainer",
    "check_config",
    "generator_info",
    "hparams_of",
    "metric_tags",
    "run",
]
