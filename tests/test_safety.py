"""Nothing unsafe is loaded: checkpoints are read with ``weights_only=True`` (a pickle that
would run code is refused without running it), and configs may only build objects from
gantrain, torch and torchvision, nested ``_target_``s and saved run configs included."""

import pickle

import pytest
import torch
from conftest import TINY, compose_config, gantrain, train

from gantrain.engine.checkpoint import load_checkpoint
from gantrain.errors import UserError
from gantrain.validate import check_all_targets


class _Payload:
    """Unpickling this calls ``exec``, which creates ``marker``: the attack a pickle allows."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _malicious_checkpoint(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"format_version": 1, "step": 3, "payload": _Payload(marker)}, f)


def test_a_malicious_pickle_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "last.pt"
    _malicious_checkpoint(path, marker)
    with pytest.raises(UserError, match="corrupt or not a gantrain checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    # The control: plain pickle would have run it.
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.read_text() == "pwned"


def test_resume_and_the_tools_refuse_a_malicious_checkpoint(tmp_path):
    from gantrain.tools import generate

    run_dir = tmp_path / "run"
    train(run_dir, [*TINY, "trainer.steps=2"])
    marker = tmp_path / "marker"
    for name in ("last.pt", "generator.pt"):
        _malicious_checkpoint(run_dir / "checkpoints" / name, marker)
    result = gantrain(f"resume={run_dir}", "trainer.steps=4", cwd=tmp_path)
    assert result.returncode == 2 and "corrupt or not a gantrain checkpoint" in result.stderr
    with pytest.raises(SystemExit):
        generate.main([str(run_dir), "--num", "2"])
    assert not marker.exists()


@pytest.mark.parametrize(
    "override",
    [
        "loss._target_=os.system",
        "+data.extra._target_=os.system",  # nested: Hydra would instantiate it recursively
        "optim.g._target_=torch.hub.load",
        "optim.d._target_=builtins.eval",
    ],
)
def test_targets_outside_gantrain_torch_and_torchvision_are_refused_before_a_run_dir(tmp_path, override):
    result = gantrain(*TINY, override, cwd=tmp_path)
    assert result.returncode == 2 and "is refused" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_every_config_that_ships_builds_only_allowed_targets():
    from omegaconf import OmegaConf

    check_all_targets(OmegaConf.to_container(compose_config([]), resolve=False))
    with pytest.raises(UserError, match="model.generator._target_=subprocess.run"):
        check_all_targets({"model": {"generator": {"_target_": "subprocess.run"}}})


def test_a_tampered_saved_config_is_refused_when_a_tool_rebuilds_the_run(tmp_path):
    from gantrain.engine.checkpoint import save_checkpoint
    from gantrain.tools.run import open_run

    run_dir = tmp_path / "run"
    train(run_dir, [*TINY, "trainer.steps=2"])
    path = run_dir / "checkpoints" / "generator.pt"
    state = torch.load(path, weights_only=True)
    state["config"] = state["config"].replace("gantrain.nets.dcgan.DCGANGenerator", "os.system")
    save_checkpoint(state, path)
    with pytest.raises(UserError, match="os.system is refused"):
        open_run(run_dir)
