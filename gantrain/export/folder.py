"""The exported folder's format: what ``gantrain-export`` writes and what loading reads back.

An exported folder is self-contained: ``config.json`` (what G maps and the model node
that rebuilds it; ``EXPORT_VERSION`` says which layout), the weights in one of
``FORMATS`` (``generator.safetensors``; ``generator.onnx`` or ``generator.pt``, one per
direction for CycleGAN), ``parity.json`` and a ``README.md`` model card. Reading a
safetensors folder unpickles nothing: the config is JSON and safetensors stores raw
tensors (https://huggingface.co/docs/safetensors), so loading a folder from anyone runs
no code of theirs (the ``_target_``s of its model node pass the same allow-list as a
run's config, ``validate.check_all_targets``).

This module is the export package's ground floor: it imports only ``errors``, so the
config layer (``trained.load_generator``) and the tools can read a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gantrain.errors import UserError

CONFIG = "config.json"
PARITY = "parity.json"
CARD = "README.md"
EXPORT_VERSION = 1
FORMATS: dict[str, str] = {"safetensors": "safetensors", "onnx": "onnx", "torchscript": "pt"}  # format: extension
EXTRA_HINT = "pip install 'gantrain[export]'"


def weight_files(fmt: str, kind: str, directions: tuple[str, ...]) -> dict[str, str]:
    """The weight files of a folder, by the net they hold: ``generator`` (a noise G, or any G in
    safetensors, CycleGAN's two together), or a direction (``AB``, ``BA``) for a translator's graph."""
    ext = FORMATS[fmt]
    if fmt == "safetensors" or kind == "noise":
        return {"generator": f"generator.{ext}"}
    if len(directions) == 1:
        return {directions[0]: f"generator.{ext}"}
    return {d: f"generator_{d}.{ext}" for d in directions}


def is_export(path: str | Path) -> bool:
    """A folder ``gantrain-export`` wrote (a run directory has no ``config.json``)."""
    return (Path(path) / CONFIG).is_file()


def read_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of an exported folder, checked to be one gantrain can read."""
    path = Path(folder) / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}): it is not a gantrain export") from None
    if not isinstance(config, dict) or config.get("gantrain_export") != EXPORT_VERSION:
        raise UserError(f"{path} is not a gantrain export (layout {EXPORT_VERSION} expected)")
    return config


def read_safetensors(folder: str | Path, config: dict[str, Any]) -> dict:
    """The state dict of a safetensors folder's G (plain tensors: nothing is unpickled)."""
    if config.get("format") != "safetensors":
        raise UserError(
            f"{folder} holds a {config.get('format')} export, which runs in its own runtime "
            f"(its README.md says how); gantrain loads safetensors exports: gantrain-export RUN --format safetensors"
        )
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UserError("reading a safetensors export needs the safetensors package: pip install safetensors") from None
    path = Path(folder) / config["files"]["generator"]
    if not path.is_file():
        raise UserError(f"{path} is missing: the export is incomplete, export the run again")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise UserError(f"cannot read {path} ({str(exc).splitlines()[0]}): export the run again") from None
