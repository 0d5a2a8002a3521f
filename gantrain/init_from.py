"""Fine-tuning: ``init_from=<run dir or checkpoint>`` starts a new run from another run's weights.

Transfer from a GAN trained on plenty of data is the usual way to train one on little
(Wang et al., "Transferring GANs: generating images from limited data", ECCV 2018);
with Freeze-D (``model.discriminator.freeze``, ``nets/freeze.py``; Mo et al., 2020) the
first blocks of the pretrained D stay fixed.

What is loaded, and only that: the nets' own state, G's and D's parameters and buffers
(BatchNorm's running statistics, spectral normalisation's vectors), from the keys
``G.*`` and ``D.*`` of the source's ``checkpoint["model"]``, and the EMA copy of G: the
source's EMA when it kept one, else its G. Everything else starts fresh, as in any new
run: optimizers (empty moments), the step and the learning-rate schedules, the data
stream, the random generators, the best evaluation, and the model's buffers that are not
net weights (CycleGAN's pools of past fakes, an augmentation's state). The EMA's update
count starts at zero too, so its warm-up (``engine/ema.py``) runs again: the average soon
follows the fine-tuned G rather than the source's history.

This module sits beside ``build.py`` (the config layer), not in ``engine/``: it reads
``init_from`` and the source's recorded config, and its errors name config keys.

A source is a run directory (its ``checkpoints/last.pt``) or a training checkpoint file
(``last.pt``, ``best.pt``). An exported ``generator.pt`` is refused: it holds G's EMA
weights alone, and a pretrained G against a random D learns from a D that knows nothing,
which throws away what G knew; Freeze-D needs the source's D too. A run resumed after it
started from a source continues from its own checkpoint and never reads the source again
(``build.py`` calls this module only when not resuming).

The source is recorded in the new run's ``init_from.json`` (written atomically by rank 0):
the checkpoint's path, its step and data spec, and the source's whole config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gantrain.data.spec import DataSpec
from gantrain.engine.checkpoint import CHECKPOINT_DIR, last_checkpoint, load_checkpoint, write_json
from gantrain.engine.distributed import SingleProcess
from gantrain.errors import UserError

log = logging.getLogger("gantrain")

RECORD = "init_from.json"
# The settings that decide the nets' shapes, compared when the weights do not fit.
SPEC_KEYS = {"channels": "data.channels", "image_size": "data.image_size", "num_classes": "classes"}
NET_NODES = ("generator", "discriminator")
NOT_SHAPES = ("model.discriminator.freeze",)  # options of the nets that change no shape
MOST_DIFFERENCES = 3


def source_checkpoint(init_from: str) -> Path:
    """The checkpoint file ``init_from`` names, resolved: a run directory's
    ``checkpoints/last.pt``, or the file itself. A missing one is one line."""
    path = Path(init_from).expanduser()
    if path.is_dir():
        last = last_checkpoint(path)
        if not last.is_file():
            raise UserError(
                f"init_from={init_from}: {path} holds no {CHECKPOINT_DIR}/{last.name}: point init_from at a "
                f"run directory that has saved a checkpoint, or at a checkpoint file"
            )
        return last.resolve()
    if not path.is_file():
        raise UserError(
            f"init_from={init_from}: no such file or directory: point init_from at a run directory "
            f"or at a checkpoint file (its checkpoints/last.pt or best.pt)"
        )
    return path.resolve()


def read_source(init_from: str) -> dict[str, Any]:
    """The nets' weights of the source checkpoint (``G``, ``D``, ``ema``: None when it kept
    no EMA) and its record (``init_from`` as given, ``path``, ``step``, ``config``, ``data_spec``)."""
    path = source_checkpoint(init_from)
    try:
        state = load_checkpoint(path)
    except UserError as exc:  # corrupt, or not a gantrain checkpoint
        raise UserError(f"init_from={init_from}: {exc}") from None
    if "model" not in state:
        kind = "an exported generator (G alone)" if "generator" in state else "not a training checkpoint"
        raise UserError(
            f"init_from={init_from}: {path} is {kind}; fine-tuning needs G, D and the EMA: point init_from "
            f"at the run directory or its {CHECKPOINT_DIR}/last.pt"
        )

    def net(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}

    ema = state.get("ema")
    return {
        "init_from": init_from,
        "path": str(path),
        "step": int(state["step"]),
        "config": state.get("config", ""),
        "data_spec": state.get("data_spec", {}),
        "G": net("G."),
        "D": net("D."),
        "ema": ema["module"] if ema else None,
    }


def _first_misfit(name: str, own: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor]) -> str | None:
    """The first key of ``loaded`` that does not fit ``own`` (a net's state dict), said in words."""
    for key, value in own.items():
        if key not in loaded:
            return f"{name}.{key} (shape {list(value.shape)} here) is missing from the source"
        if loaded[key].shape != value.shape:
            return f"{name}.{key} has shape {list(loaded[key].shape)} in the source and {list(value.shape)} here"
    extra = next((key for key in loaded if key not in own), None)
    if extra is not None:
        return f"the source has {name}.{extra} (shape {list(loaded[extra].shape)}), which this run's {name} has not"
    return None


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}.{key}").items()}


def differences(cfg: DictConfig, spec: DataSpec, source: dict[str, Any]) -> list[str]:
    """The shape-deciding settings of this run that differ from the source's (``key=ours
    (source: theirs)``): the data's shape and the model's net options."""
    found = [
        f"{key}={getattr(spec, field)} (source: {source['data_spec'][field]})"
        for field, key in SPEC_KEYS.items()
        if field in source["data_spec"] and source["data_spec"][field] != getattr(spec, field)
    ]
    if source["config"]:
        theirs = OmegaConf.to_container(OmegaConf.create(source["config"]).model, resolve=True)
        ours = OmegaConf.to_container(cfg.model, resolve=True)
        mine, other = _flat(ours, "model"), _flat(theirs, "model")
        for key in sorted(set(mine) | set(other)):
            shaping = key.split(".")[1] in (*NET_NODES, "_target_", "z_dim", "conditional")
            if shaping and key not in NOT_SHAPES and mine.get(key) != other.get(key):
                found.append(f"{key}={mine.get(key)} (source: {other.get(key)})")
    return found[:MOST_DIFFERENCES]


def start_from(
    cfg: DictConfig, model: nn.Module, spec: DataSpec, parallel: SingleProcess | None = None
) -> dict[str, Any]:
    """Read the source that ``cfg.init_from`` names (rank 0 reads, every process gets it)
    and load its G and D into ``model``; a net that does not fit is one line naming the
    first layer that differs and the settings to match. Returns the source for
    ``finish``, which loads the EMA once the loop has made it."""
    parallel = parallel or SingleProcess()
    source = parallel.from_rank0(lambda: read_source(cfg.init_from))
    nets = {"G": model.G, "D": model.D}
    own = {name: net.state_dict() for name, net in nets.items()}
    checks = [("G", own["G"], source["G"]), ("D", own["D"], source["D"])]
    if source["ema"] is not None:
        checks.append(("EMA", own["G"], source["ema"]))
    for name, mine, loaded in checks:
        misfit = _first_misfit(name, mine, loaded)
        if misfit is not None:
            differ = differences(cfg, spec, source)
            fix = f"these differ: {', '.join(differ)}" if differ else "e.g. data.image_size, model.generator.width"
            raise UserError(
                f"init_from={cfg.init_from}: the source's weights do not fit this run's nets: {misfit}; "
                f"use the source run's model and data shapes ({fix})"
            )
    for name, net in nets.items():
        net.load_state_dict(source[name])
    return source


def finish(trainer, source: dict[str, Any], run_dir: str | Path) -> None:
    """The EMA copy from the source (its EMA, else its G; none when this run keeps no
    EMA), and the record of the source: ``init_from.json`` and a log line (rank 0)."""
    ema_from = None
    if trainer.ema is not None:
        ema_from = "EMA" if source["ema"] is not None else "G"
        trainer.ema.load_state_dict(
            {"module": source["ema"] if source["ema"] is not None else source["G"], "updates": 0}
        )
    if not trainer.parallel.is_main:
        return
    config = OmegaConf.to_container(OmegaConf.create(source["config"])) if source["config"] else None
    write_json(
        Path(run_dir) / RECORD,
        {
            "init_from": source["init_from"],
            "checkpoint": source["path"],
            "step": source["step"],
            "loaded": ["G", "D"] + ([f"EMA (from the source's {ema_from})"] if ema_from else []),
            "data_spec": source["data_spec"],
            "config": config,
        },
    )
    log.info(
        "fine-tuning from %s (step %d): G, D%s loaded; optimizers, step and data stream start fresh",
        source["path"],
        source["step"],
        f" and the EMA (from its {ema_from})" if ema_from else "",
    )
