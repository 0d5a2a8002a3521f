"""Every config file composes, and passes the checks the CLI runs before training."""

from pathlib import Path

import pytest
from conftest import compose_config

from gantrain.build import check_config
from gantrain.config import CONF_DIR

GROUPS = ["data", "model", "loss", "optim", "trainer"]
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((Path(CONF_DIR) / group).glob("*.yaml"))]
EXPERIMENTS = sorted(path.stem for path in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def test_the_tree_has_what_the_readme_promises():
    assert {o for g, o in OPTIONS if g == "data"} >= {
        "mnist",
        "fashion_mnist",
        "mnist_sample",
        "celeba",
        "folder",
        "synthetic",
    }
    assert {o for g, o in OPTIONS if g == "model"} >= {"dcgan", "gan"}
    assert EXPERIMENTS


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_group_option_composes_and_checks(group, option):
    extra = ["data.path=/tmp"] if group == "data" and option.endswith("folder") else []
    cfg = compose_config([f"{group}={option}", *extra])
    check_config(cfg)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_checks(experiment):
    check_config(compose_config([f"experiment={experiment}"]))


def test_default_is_dcgan_on_the_bundled_sample():
    cfg = compose_config([])
    assert cfg.data._target_.endswith("mnist_sample")
    assert cfg.model.generator._target_.endswith("DCGANGenerator")
    assert cfg.loss.variant == "non_saturating"
    assert cfg.device == "auto"
