"""Where gantrain's Hydra configs live, and the one way to compose the training config.

The command line composes ``conf/train.yaml`` with the user's overrides (``group=option``,
``key=value``, ``+key=value``) through Hydra's Compose API; the scripts and the tests
compose the same config here, so that what they train is what ``gantrain`` would train
with the same overrides.

``recorded_overrides`` reads back the overrides a run was started with, for resume, the
run report and the model card.

This module imports neither torch nor the config layer (``build``): the CLI imports it
before torch, to check a command line quickly.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

# conf/ is shipped inside the package as gantrain.conf (pyproject.toml), so a wheel finds it too.
CONF_DIR = str(resources.files("gantrain.conf"))
CONFIG_NAME = "train"
# The Hydra behaviour the configs are written for (and that @hydra.main in the CLI asks for).
VERSION_BASE = "1.3"


def compose_config(overrides: Sequence[str] = (), *, return_hydra_config: bool = False) -> DictConfig:
    """The training config composed from ``overrides``, exactly as ``gantrain OVERRIDES`` composes it.

    ``return_hydra_config=True`` keeps the ``hydra`` node (run directory, launcher, sweeper),
    which the CLI's check before a run needs; without it the node is dropped, as in the
    config a training run receives.

    Hydra's own errors propagate unchanged (``hydra.errors.HydraException`` for an unknown
    key or option, ``omegaconf.errors.OmegaConfBaseException`` or ``ValueError`` for a bad
    value): the CLI turns them into one line, a test may match them.

    Safe to call any number of times in one process, and from inside a Hydra app: Hydra
    allows one initialised instance at a time, so one that is already initialised is set
    aside for the composition and put back afterwards.
    """
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        # The context restores Hydra's global state on the way out, on error too.
        with initialize_config_dir(config_dir=CONF_DIR, version_base=VERSION_BASE, job_name="train"):
            return compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=return_hydra_config)
    finally:
        if outer is not None:
            GlobalHydra.instance().hydra = outer


def recorded_overrides(hydra_dir: Path) -> list[str] | None:
    """The command-line overrides Hydra recorded in a run's ``.hydra`` folder when it began;
    None when there is no readable record.

    Hydra writes config.yaml, hydra.yaml, then overrides.yaml, each by creating the file and
    then writing it in one go. A kill between the two leaves overrides.yaml empty, which
    would read as no overrides at all: the default config, silently. By then hydra.yaml is
    whole, and it holds the same list (``hydra.overrides.task``)."""

    def listed(path: Path, key: str | None = None) -> ListConfig | None:
        try:
            loaded = OmegaConf.load(path)
            found = OmegaConf.select(loaded, key) if key else loaded
        except Exception:  # a damaged file (YAML or OmegaConf errors, unreadable): no record
            return None
        return found if isinstance(found, ListConfig) else None

    recorded = listed(hydra_dir / "overrides.yaml")
    if recorded is None and (hydra_dir / "overrides.yaml").is_file():
        recorded = listed(hydra_dir / "hydra.yaml", "hydra.overrides.task")
    return None if recorded is None else [str(o) for o in recorded]
