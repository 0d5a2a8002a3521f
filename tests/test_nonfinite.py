"""A NaN/Inf loss or weight is caught at the logging interval or before a checkpoint: the
run stops naming the step and the fixes with its last good checkpoint intact, or, with
``trainer.on_nonfinite=rollback``, goes back to that checkpoint with lower learning
rates and carries on."""

import pytest
import torch
from conftest import TINY, compose_config, events, on_device

from gantrain.build import build_trainer
from gantrain.engine.checkpoint import load_checkpoint
from gantrain.errors import UserError

BASE = [*TINY, "trainer.steps=12", "trainer.log_every=2", "trainer.checkpoint_every=4", "trainer.sample_every=100"]


def _trainer(run_dir, *extra, device: str = "cpu"):
    overrides = on_device([*BASE, *extra], device)
    return build_trainer(compose_config(overrides), run_dir, overrides)


def _poison(trainer, steps: set[int], once: bool = True) -> None:
    """G's loss becomes NaN at these steps (once each, or every time they come round):
    its backward pass then makes G's weights NaN too, as a diverging run does."""
    original = trainer.model.g_loss

    def g_loss(batch):
        loss, logs = original(batch)
        if trainer.step + 1 in steps:
            if once:
                steps.discard(trainer.step + 1)
            loss = loss * float("nan")
            logs = {**logs, "loss/g": loss.detach()}
        return loss, logs

    trainer.model.g_loss = g_loss


def _all_finite(state: dict) -> bool:
    return all(v.isfinite().all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("log_every, caught_at", [(2, 8), (3, 8)])
@pytest.mark.device
def test_a_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, log_every, caught_at, device):
    # log_every=3: the checkpoint at step 8 comes before the next logging step (9), and
    # is refused because G's weights are NaN.
    trainer = _trainer(tmp_path / "run", f"trainer.log_every={log_every}", device=device)
    _poison(trainer, {7})
    with pytest.raises(UserError) as error:
        trainer.fit()
    message = str(error.value)
    assert f"by step {caught_at}" in message and "last good checkpoint (step 4) is kept" in message
    assert "optim.g.lr" in message and "trainer.on_nonfinite=rollback" in message
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 4 and _all_finite(state)


@pytest.mark.device
def test_rollback_returns_to_the_checkpoint_with_halved_learning_rates_and_finishes(tmp_path, device):
    trainer = _trainer(tmp_path / "run", "trainer.on_nonfinite=rollback", device=device)
    lr = trainer.opt_g.param_groups[0]["lr"]
    _poison(trainer, {7})
    assert trainer.fit() == "finished"
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 12 and state["rollbacks"] == 1 and _all_finite(state)
    assert state["optim"]["g"]["param_groups"][0]["lr"] == pytest.approx(lr / 2)
    trainer.logger.flush()
    scalars = events(tmp_path / "run")
    assert [e.value for e in scalars.Scalars("nonfinite/rollbacks")] == [1]
    assert scalars.Scalars("lr/g")[-1].value == pytest.approx(lr / 2)


@pytest.mark.device
def test_rollbacks_are_bounded(tmp_path, device):
    trainer = _trainer(tmp_path / "run", "trainer.on_nonfinite=rollback", "trainer.max_rollbacks=2", device=device)
    _poison(trainer, set(range(5, 13)), once=False)  # diverges again after every rollback
    with pytest.raises(UserError, match="trainer.max_rollbacks was reached"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 4 and _all_finite(state)
    assert trainer.rollbacks == 2


@pytest.mark.device
def test_a_nonfinite_weight_alone_is_caught(tmp_path, device):
    trainer = _trainer(tmp_path / "run", device=device)
    original = trainer.model.after_d_step

    def after_d_step():
        original()
        if trainer.step == 5:  # a critic weight blows up, the losses are still finite this step
            with torch.no_grad():  # (indexed, not viewed: a channels_last weight has no flat view)
                weight = next(trainer.model.D.parameters())
                weight[(0,) * weight.dim()] = float("inf")

    trainer.model.after_d_step = after_d_step
    with pytest.raises(UserError, match="D weights"):
        trainer.fit()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("trainer.rollback_lr_scale=0", "(0, 1]"),
        ("trainer.on_nonfinite=retry", "trainer.on_nonfinite"),
        ("trainer.max_rollbacks=-1", "at least 0"),
    ],
)
def test_bad_rollback_settings_are_refused(tmp_path, override, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
        _trainer(tmp_path / "run", override)
