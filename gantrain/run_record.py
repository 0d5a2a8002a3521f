"""What a run records about itself in TensorBoard besides its curves: the resolved
config, the environment and (conditional models) what each row of the sample grid
shows, at the start; the hyperparameters and the metrics that rank runs (HParams tab),
at the end. Sweeps compare runs through these.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from gantrain.config_check import plain
from gantrain.data.spec import PAIRING_NAMES

log = logging.getLogger("gantrain")

# Settings that say where things are or how they are shown, not what is trained.
_NOT_HPARAMS = (
    "data.root",
    "data.path",
    "data.num_workers",
    "data.cache",
    "data.cache_dir",
    "trainer.progress",
    "trainer.log_every",
    "trainer.sample_every",
    "trainer.checkpoint_every",
    "trainer.num_samples",
    "eval.cache_dir",
    "eval.inception_weights",
    "eval.batch_size",
)


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
        walk(plain(cfg[group]), group)
    return flat


def metric_tags(run_dir: Path, logged: set[str]) -> list[str]:
    """Scalars that rank runs: the losses, validation and evaluation metrics, including
    those of the last evaluation report (it may come from before a resume)."""
    tags = {"loss/d", "loss/g"} | {t for t in logged if t.startswith(("eval/", "val/"))}
    reports = sorted((run_dir / "eval").glob("step_*.json"))
    if reports:
        tags |= {f"eval/{name}" for name in json.loads(reports[-1].read_text())["metrics"]}
    return sorted(tags)


def record_start(trainer, run_dir: str | Path, class_rows: int) -> None:
    """The log lines and tables of a starting (or resumed) run. ``class_rows``: the
    classes G is conditioned on (one per row of the sample grid), 0 for none."""
    spec, env = trainer.meta["data_spec"], trainer.meta["env"]
    counts = {
        name: sum(p.numel() for p in net.parameters()) for name, net in (("G", trainer.model.G), ("D", trainer.model.D))
    }
    log.info("run directory: %s", Path(run_dir).resolve())
    log.info(
        "data %s: %s, %d channel(s), %dx%d, %d classes; G %.2fM params, D %.2fM params; device %s",
        spec["name"],
        PAIRING_NAMES[spec["pairing"]],
        spec["channels"],
        spec["image_size"],
        spec["image_size"],
        spec["num_classes"],
        counts["G"] / 1e6,
        counts["D"] / 1e6,
        env["device"],
    )
    if trainer.step:
        log.info("resuming at step %d of %d", trainer.step, trainer.cfg.steps)
    trainer.logger.text("config", "```yaml\n" + trainer.meta["config"] + "\n```", trainer.step)
    trainer.logger.table("environment", env, trainer.step)
    if class_rows:  # what each row of the conditional sample grid shows
        names = spec["class_names"] or [str(k) for k in range(spec["num_classes"])]
        trainer.logger.table("classes", {f"row {k}": name for k, name in enumerate(names)}, trainer.step)


def record_end(trainer, cfg: DictConfig, run_dir: str | Path) -> None:
    """The HParams entry that ranks this run among a sweep's."""
    trainer.logger.hparams(hparams_of(cfg), metric_tags(Path(run_dir), trainer.logger.scalar_tags))
    trainer.logger.flush()
