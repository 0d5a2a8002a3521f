"""A trained run's generator, read back for the tools (``gantrain-generate``, walks,
inversion, dissection, ``gantrain-eval``, export, ``torch.hub``): G rebuilt from the run's
own config, and what the run's model says about it through its contract
(``models/base.py``): its test-time translator and its quality report. ``build.py`` builds
runs to train (and keeps ``generator_info``, what G maps, which ``run`` records at the
start); this module reads back what they left.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gantrain.build import build_nets, model_of
from gantrain.config_check import plain
from gantrain.engine.checkpoint import exported_generator, load_checkpoint
from gantrain.errors import UserError, keyed
from gantrain.metrics.evaluate import EvalConfig
from gantrain.validate import to_dataclass


def translator(model_cfg: DictConfig, G: nn.Module, direction: str, seed: int = 0):
    """``images -> images`` with a trained translator's G, as the run's model runs it at test time."""
    cls, options = model_of(model_cfg)
    return cls.translator(G, direction, options, seed)


def load_generator(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The generator a run exported (``checkpoints/generator.pt``: the EMA weights when
    the run kept an EMA), rebuilt from the run's own config, in eval mode. Returns it
    with the export's record (step, data_spec, config, ...). ``run_dir`` may also be a
    folder ``gantrain-export --format safetensors`` wrote: G is rebuilt from its
    ``config.json`` and ``generator.safetensors`` alone, unpickling nothing; its record
    adds ``export`` (the whole ``config.json``). A translator's test mode is applied where
    it translates (``translator``), as for a run."""
    # Imported here: only this function reads exported folders (gantrain/export/folder.py).
    from gantrain.export.folder import is_export, read_config, read_safetensors

    if is_export(run_dir):
        export = read_config(run_dir)
        state = read_safetensors(run_dir, export)
        record = {
            "step": export["step"],
            "config": {"model": export["model"]},
            "data_spec": export["data_spec"],
            "ema": export["weights"] == "ema",
            "export": export,
        }
    else:
        path = exported_generator(run_dir)
        if not path.is_file():
            raise UserError(
                f"no exported generator at {path}: point at a gantrain run directory that has saved a checkpoint "
                f"or a folder of gantrain-export --format safetensors"
            )
        record = load_checkpoint(path, map_location=device)
        state = record["generator"]
    G = build_nets(OmegaConf.create(record["config"]).model, record["data_spec"])["generator"]
    G.load_state_dict(state)
    return G.to(device).eval(), record


def evaluate_generator(cfg: DictConfig, G: nn.Module, source, device, seed: int) -> dict:
    """``gantrain-eval``: the model's quality report of a trained G (``cfg``: the run's config)."""
    eval_cfg = to_dataclass(EvalConfig, plain(cfg.eval), "eval")
    cls, options = model_of(cfg.model)
    with keyed("eval"):
        return cls.evaluate(G, source, eval_cfg, options, device, seed)
