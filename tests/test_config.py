"""``gantrain.config.compose_config``: the one way scripts, tests and the CLI compose the
training config from overrides."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from gantrain.cli import compose_error
from gantrain.config import CONF_DIR, CONFIG_NAME, compose_config, recorded_overrides


def test_the_config_dir_holds_the_root_config():
    assert (Path(CONF_DIR) / f"{CONFIG_NAME}.yaml").is_file()


def test_an_experiment_and_an_override_compose_to_their_values():
    cfg = compose_config(["experiment=wgan_gp_mnist", "trainer.d_steps=3"])
    assert cfg.trainer.d_steps == 3  # the override wins over the experiment's 5
    assert cfg.trainer.steps == 20000 and cfg.model.discriminator.norm == "layer"  # the experiment's
    assert cfg.optim.g.lr == 1e-4 and list(cfg.optim.d.betas) == [0.0, 0.9]
    assert cfg.data._target_ == "gantrain.data.mnist.mnist"  # the experiment's choice of group options
    assert cfg.loss._target_.endswith("WassersteinLoss")
    assert "hydra" not in cfg  # as a training run receives it


def test_the_defaults_compose_without_overrides():
    cfg = compose_config()
    assert cfg.seed == 0 and cfg.device == "auto" and cfg.resume is None
    assert cfg.model.generator._target_.endswith("DCGANGenerator")


def test_the_hydra_node_on_request():
    cfg = compose_config(["hydra.run.dir=outputs/here"], return_hydra_config=True)
    assert cfg.hydra.run.dir == "outputs/here" and cfg.hydra.job.name == "train"
    assert str(compose_config(return_hydra_config=True).hydra.run.dir).startswith("outputs/")


def test_an_unknown_key_is_hydras_error_which_the_cli_makes_one_line():
    with pytest.raises(ConfigCompositionException, match="Could not override 'trainer.stpes'") as info:
        compose_config(["trainer.stpes=10"])
    message = str(compose_error(info.value))
    assert "\n" not in message
    assert message.startswith("unknown option trainer.stpes") and "gantrain --cfg job" in message


def test_an_unknown_option_of_a_group_lists_the_choices():
    with pytest.raises(MissingConfigException) as info:
        compose_config(["model=stylegan9"])
    message = str(compose_error(info.value))
    assert "\n" not in message and "model/stylegan9" in message and "dcgan" in message


def test_repeated_calls_and_failures_leave_hydra_as_they_found_it():
    for seed in range(3):
        with pytest.raises(ConfigCompositionException):
            compose_config(["trainer.stpes=10"])
        assert compose_config([f"seed={seed}"]).seed == seed
    assert not GlobalHydra.instance().is_initialized()


def test_inside_another_hydra_initialisation(tmp_path):
    (tmp_path / "other.yaml").write_text("answer: 42\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3", job_name="other"):
        assert compose_config(["seed=7"]).seed == 7
        assert compose("other").answer == 42  # the outer initialisation is back in place
    assert not GlobalHydra.instance().is_initialized()


def test_importing_it_imports_neither_torch_nor_the_config_layer():
    code = "import sys, gantrain.config; print('torch' in sys.modules, 'gantrain.build' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_recorded_overrides_survive_a_kill_while_hydra_wrote_them(tmp_path):
    """Hydra's record as it writes it (hydra.yaml holds the node with hydra.overrides.task):
    overrides.yaml whole, empty (created, killed before its write), damaged, or absent."""
    given = ["model=gan", "trainer.steps=2", "optim.g.lr=0.001"]
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    hydra_node = compose_config(given, return_hydra_config=True).hydra
    OmegaConf.save(OmegaConf.create({"hydra": OmegaConf.to_container(hydra_node)}), hydra_dir / "hydra.yaml")
    assert recorded_overrides(hydra_dir) is None  # no overrides.yaml: Hydra never got that far
    OmegaConf.save(OmegaConf.create(given), hydra_dir / "overrides.yaml")
    assert recorded_overrides(hydra_dir) == given
    for killed in ("", "model=gan: [unclosed\n"):
        (hydra_dir / "overrides.yaml").write_text(killed)
        assert recorded_overrides(hydra_dir) == given, repr(killed)
    (hydra_dir / "hydra.yaml").write_text("")  # neither file holds the list: no record, not the defaults
    assert recorded_overrides(hydra_dir) is None
