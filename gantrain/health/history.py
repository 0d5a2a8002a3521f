"""A run's scalars as the health rules read them (``History``), and what the rules need to
know about the run besides them (``RunContext``).

``History`` maps a TensorBoard tag to its ``(step, value)`` points in step order. The
monitor keeps one while training; ``read_history`` reads one back from a run's
``RUN/tb`` events with TensorBoard's own reader, every scalar kept (``size_guidance``
0), so ``gantrain-doctor`` judges a finished or a running run with the rules the monitor
used. ``RunContext`` is plain values: the monitor builds it from the built objects,
``context_from_config`` from a run's resolved config (``RUN/.hydra/config.yaml``).

The health package sits at the engine level: it reads configs as plain dicts and never
imports the config layer.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gantrain.errors import UserError
from gantrain.health.record import HEALTH_FILE
from gantrain.metrics.names import LOWER_IS_BETTER

History = dict[str, list[tuple[int, float]]]  # tag -> [(step, value), ...] in step order (scalars as logged)

# The data builders whose datasets carry class labels (conf/data/*.yaml); synthetic data
# has them when its num_classes is set. A run dir does not record the data spec outside
# its checkpoints, so the doctor reads labels off the config (the monitor knows the spec).
LABELLED_DATA = ("gantrain.data.mnist.mnist", "gantrain.data.mnist.fashion_mnist", "gantrain.data.mnist.mnist_sample")
# The data that ``families`` (metrics/evaluate.py) scores with the MNIST judge: its best is
# classifier_fid when eval.best is auto.
MNIST_FAMILY = LABELLED_DATA
# Translators' metrics that are errors or distances (lower is better) besides FID/KID.
LOWER_PREFIXES = ("fid", "kid", "l1", "cycle_l1", "classifier_fid")
SUBSET_FILE = "data_subset.json"  # run_record.SUBSET_FILE (written by the config layer)


@dataclass(frozen=True)
class RunContext:
    """What the rules need to know about the run besides its scalars."""

    noise_model: bool  # samples from noise (diversity is meaningful)
    labelled: bool
    wasserstein: bool  # no decision boundary
    train_images: int | None  # images in the training stream (after data.max_images), None if unknown
    augment: str  # "none", "diffaugment", "ada"
    lr_g: float  # the configured learning rates (to phrase "optim.g.lr=<half>" overrides)
    lr_d: float
    eval_metric: str | None  # the metric that picks best.pt (e.g. "classifier_fid"), None: no evaluation
    eval_lower_is_better: bool
    steps: int  # trainer.steps


def read_history(run_dir: str | Path) -> History:
    """Every scalar of ``RUN/tb`` (empty when the run logged nothing yet). A rolled-back or
    resumed run may log a step twice: TensorBoard's reader drops the abandoned branch, and
    of what remains the last value of a step wins."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = Path(run_dir) / "tb"
    if not tb.is_dir():
        return {}
    events = EventAccumulator(str(tb), size_guidance={"scalars": 0, "images": 1, "tensors": 1, "histograms": 1})
    events.Reload()
    history: History = {}
    for tag in events.Tags().get("scalars", []):
        by_step = {int(event.step): float(event.value) for event in events.Scalars(tag)}
        history[tag] = sorted(by_step.items())
    return history


def _target(node: Any) -> str:
    return str(node.get("_target_", "")) if isinstance(node, Mapping) else ""


def _attribute(target: str, name: str, default: Any) -> Any:
    """An attribute of the class a ``_target_`` names (``default`` when it cannot be imported)."""
    module, _, attr = target.rpartition(".")
    try:
        return getattr(getattr(importlib.import_module(module), attr), name, default)
    except (ImportError, AttributeError, ValueError):
        return default


def augment_name(node: Any) -> str:
    """``none``, ``diffaugment`` or ``ada`` from an augment node (older runs have none)."""
    target = _target(node).lower()
    if target.endswith(".ada"):
        return "ada"
    return "diffaugment" if target.endswith(".diffaugment") else "none"


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric.startswith(LOWER_PREFIXES)


def _eval_metric(tree: Mapping, best_record: Mapping | None) -> str | None:
    """The metric that picks best.pt: eval/best.json's when written, else eval.best (auto:
    as metrics/evaluate.py chooses it); None when the run does not evaluate."""
    if best_record and best_record.get("metric"):
        return str(best_record["metric"])
    node = tree.get("eval") or {}
    if not node.get("every"):
        return None
    if node.get("best", "auto") != "auto":
        return str(node["best"])
    metrics = node.get("metrics") or ["auto"]
    classifier = "classifier" in metrics or ("auto" in metrics and _target(tree.get("data")) in MNIST_FAMILY)
    return "classifier_fid" if classifier else "fid"


def _float(value: Any, default: float = math.nan) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def context_from_config(
    tree: Mapping, train_images: int | None = None, labelled: bool | None = None, best_record: Mapping | None = None
) -> RunContext:
    """A ``RunContext`` from a resolved config as plain values (``RUN/.hydra/config.yaml``).
    ``train_images`` and ``labelled`` come from the data when known (the config alone gives
    ``data.max_images`` and the labelled built-in datasets)."""
    data, model = tree.get("data") or {}, tree.get("model") or {}
    optim, trainer = tree.get("optim") or {}, tree.get("trainer") or {}
    if labelled is None:
        labelled = (
            bool(model.get("conditional"))
            or _target(data) in LABELLED_DATA
            or (_target(data).endswith(".synthetic") and bool(data.get("num_classes")))
        )
    if train_images is None and isinstance(data.get("max_images"), int):
        train_images = int(data["max_images"])
    metric = _eval_metric(tree, best_record)
    return RunContext(
        noise_model=_attribute(_target(model), "data_kind", "none") == "none",
        labelled=labelled,
        wasserstein=_attribute(_target(tree.get("loss")), "decision_boundary", 0.0) is None,
        train_images=train_images,
        augment=augment_name(tree.get("augment")),
        lr_g=_float((optim.get("g") or {}).get("lr")),
        lr_d=_float((optim.get("d") or {}).get("lr")),
        eval_metric=metric,
        eval_lower_is_better=lower_is_better(metric) if metric else True,
        steps=int(_float(trainer.get("steps"), 0)),
    )


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None  # a file being written by an older, non-atomic writer: read it next time


def read_context(run_dir: str | Path) -> RunContext:
    """The context of a run directory: its ``.hydra/config.yaml``, the images of its
    ``data_subset.json`` (data.max_images), the data facts its ``health.json`` records and
    the metric of its ``eval/best.json``."""
    run = Path(run_dir)
    path = run / ".hydra" / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run}: no .hydra/config.yaml, so not a gantrain run directory: point at a run's folder")
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path} holds no config: point at a gantrain run's folder")
    subset = _json(run / SUBSET_FILE) or {}
    used = subset.get("used")
    # The monitor records the data's size and labels in health.json (runs from before it: None).
    data = (_json(run / HEALTH_FILE) or {}).get("data") or {}
    if not isinstance(used, int):
        used = data.get("train_images")
    labelled = data.get("labelled")
    return context_from_config(
        tree,
        train_images=int(used) if isinstance(used, int) else None,
        labelled=labelled if isinstance(labelled, bool) else None,
        best_record=_json(run / "eval" / "best.json"),
    )
