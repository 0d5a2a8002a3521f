"""The EMA of G's weights: its arithmetic, and that samples and exports come from it."""

import pytest
import torch
from conftest import TINY, checkpoint, compose_config, on_device, train
from torch import nn

from gantrain.build import build_trainer
from gantrain.engine.ema import EMA
from gantrain.trained import load_generator


def test_ema_follows_the_warmed_up_average_and_copies_buffers():
    net = nn.BatchNorm1d(1)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net, decay=0.9)
    expected = 0.0
    for n in range(1, 40):
        with torch.no_grad():
            net.weight.fill_(float(n))
            net.running_mean.fill_(float(-n))
        ema.update(net)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * n
        assert ema.module.weight.item() == pytest.approx(expected, rel=1e-5)
        assert ema.module.running_mean.item() == -n
    assert not ema.module.weight.requires_grad and not ema.module.training


@pytest.mark.device
@pytest.mark.slow
def test_samples_and_export_come_from_the_ema_copy(tmp_path, device):
    run_dir = tmp_path / "run"
    overrides = on_device([*TINY, "trainer.ema_decay=0.9", "trainer.steps=3"], device)
    train(run_dir, overrides)
    state = checkpoint(run_dir)
    G, export = load_generator(run_dir)
    assert export["ema"] is True and export["step"] == 3
    for key, value in G.state_dict().items():
        assert torch.equal(value, state["ema"]["module"][key]), key
    differs = [key for key, value in G.state_dict().items() if not torch.equal(value, state["model"][f"G.{key}"])]
    assert differs  # the average is not the last iterate

    trainer = build_trainer(compose_config([*overrides, "trainer.steps=4", f"resume={run_dir}"]), run_dir, overrides)
    calls = []
    trainer.ema.module.register_forward_hook(lambda *args: calls.append("ema"))
    trainer.model.G.register_forward_hook(lambda *args: calls.append("G"))
    trainer.log_samples()
    assert calls == ["ema"]
    trainer.logger.close()


@pytest.mark.device
def test_without_ema_the_export_is_g(tmp_path, device):
    run_dir = tmp_path / "run"
    train(run_dir, on_device([*TINY, "trainer.steps=2"], device))
    state = checkpoint(run_dir)
    G, export = load_generator(run_dir)
    assert export["ema"] is False and "ema" not in state
    for key, value in G.state_dict().items():
        assert torch.equal(value, state["model"][f"G.{key}"]), key
