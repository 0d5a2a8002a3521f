"""What a run records about itself in TensorBoard besides its curves: the resolved
config, the environment and (conditional models) what each row of the sample grid
shows, at the start; the hyperparameters and the metrics that rank runs (HParams tab),
at the end. Sweeps compare runs through these.

A run on a subset of its dataset (``data.max_images=N``, ``data/subset.py``) records the
images it trains on in ``RUN/data_subset.json``: N, the seed, the dataset's size and the
positions kept (and their files, for datasets read from files). A resumed run must draw
the very same images; one that would not (another ``data.max_images`` or ``seed``, or a
dataset folder that changed) is refused before it trains.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from gantrain.atomic import atomic_write
from gantrain.config_check import plain
from gantrain.data.spec import PAIRING_NAMES
from gantrain.data.subset import limit
from gantrain.errors import UserError

log = logging.getLogger("gantrain")

SUBSET_FILE = "data_subset.json"

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


def training_subset(source, max_images: int | None, seed: int, resume: str | None) -> tuple[object, dict | None]:
    """The source the training stream draws from: ``source`` limited to ``data.max_images``
    images (``data/subset.py``), with the record ``data_subset.json`` will hold (None: the
    whole dataset). ``resume``: the run directory continued, whose record must match."""
    limited, parts = limit(source, max_images, seed)
    record = None
    if parts is None and max_images is not None:
        log.warning(
            "data.max_images=%d is not below the %d images of %s: training on all of them",
            max_images,
            source.spec.size,
            source.spec.name or "the dataset",
        )
    elif parts is not None:
        record = {"max_images": max_images, "seed": seed, "dataset": source.spec.name}
        record.update(size=source.spec.size, used=limited.spec.size)
        if set(parts) == {"images"}:
            record.update(parts["images"].record())
        else:  # unpaired data: each domain its own choice
            record["domains"] = {name: part.record() for name, part in parts.items()}
    if resume:
        check_resumed_subset(Path(resume), record)
    return limited, record


def _images(record: dict | None) -> object:
    """What says which images a record holds: positions, sizes and file names, not where
    the dataset lies (a moved dataset, resumed with its new path, holds the same images)."""
    if record is None:
        return None
    parts = record.get("domains", {"images": record})
    return {name: [part["size"], part["indices"], part.get("files")] for name, part in parts.items()}


def subset_json(record: dict) -> str:
    """The record as JSON, one key a line: a list of 60000 positions stays one line."""
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()) + "\n}\n"


def _kept(record: dict | None) -> str:
    if record is None:
        return "all the images"
    return f"a subset of {record['used']} of its {record['size']} images (data.max_images={record['max_images']})"


def check_resumed_subset(run_dir: Path, record: dict | None) -> None:
    """A resumed run trains on the images it trained on: the subset recorded in
    ``run_dir`` (none: the whole dataset) must be the one chosen now."""
    path = run_dir / SUBSET_FILE
    before = json.loads(path.read_text()) if path.is_file() else None
    if _images(before) == _images(record):
        return
    dataset = ""
    if before is not None and record is not None and before["size"] != record["size"]:
        dataset = f" (the dataset had {before['size']} images, it has {record['size']} now)"
    raise UserError(
        f"resume={run_dir}: the run trained on {_kept(before)}{dataset}, but this config trains on "
        f"{_kept(record)}: resume with the run's own data.max_images and seed (and its dataset unchanged), "
        f"or start a new run"
    )


def record_subset(trainer, run_dir: str | Path) -> None:
    """``RUN/data_subset.json`` and its log line, by rank 0, when the run trains on a subset
    (the record rides on the training stream: ``build.build_trainer``)."""
    record = getattr(trainer.stream, "subset", None)
    if record is None or not trainer.parallel.is_main:
        return
    path = Path(run_dir) / SUBSET_FILE
    atomic_write(path, lambda f: f.write(subset_json(record)), binary=False)
    log.info(
        "data.max_images=%d: training on %d of the %d images of %s (seed %d; %s); metrics compare with all %d",
        record["max_images"],
        record["used"],
        record["size"],
        record["dataset"] or "the dataset",
        record["seed"],
        path,
        record["size"],
    )


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
    record_subset(trainer, run_dir)
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
