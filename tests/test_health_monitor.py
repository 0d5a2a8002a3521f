"""The health monitor in a training run (gantrain/health/monitor.py): a healthy run's record;
``trainer.on_unhealthy`` warn (record, TensorBoard, one warning, trains on), stop (a
checkpoint, ``fit`` says "unhealthy", the CLI exits 1 with one line) and rollback (to
checkpoints/healthy.pt with lower learning rates or DiffAugment, recorded, re-applied on
resume). Diagnoses are forced by replacing the monitor's ``diagnose``: the rules themselves
are tested on constructed histories elsewhere. Each test trains a few tiny steps (seconds)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from conftest import TINY, checkpoint, compose_config, events, gantrain, train

from gantrain.augment.diffaugment import DiffAugment
from gantrain.build import build_trainer
from gantrain.health import monitor
from gantrain.health.diagnose import Diagnosis
from gantrain.health.record import stop_message

BASE = [*TINY, "trainer.steps=8", "trainer.log_every=2", "trainer.checkpoint_every=2", "trainer.sample_every=100"]
OVERRIDES = ("optim.g.lr=0.0001", "optim.d.lr=0.0001")


def forced(cause: str = "mode_collapse", fix: str = "lower_lr", steps: set[int] | None = None, start: int = 4):
    """A ``diagnose`` under which ``cause`` holds from log step ``start`` on, or at ``steps``
    only, the first time each of them is seen (a rollback comes back to a step healthy)."""
    seen: set[int] = set()

    def diagnose(history, context, thresholds=None) -> list[Diagnosis]:
        step = history["loss/d"][-1][0]
        holds = step >= start if steps is None else step in steps and step not in seen
        seen.add(step)
        return [Diagnosis(cause, step, "Forced by the test.", OVERRIDES, fix)] if holds else []

    return diagnose


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "health.json").read_text())


def _texts(run_dir: Path) -> list[str]:
    return [e.tensor_proto.string_val[0].decode() for e in events(run_dir).Tensors("health/text_summary")]


def test_a_healthy_run_logs_the_signals_and_records_a_healthy_verdict(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir, BASE) == "finished"
    record = _record(run_dir)
    assert record["verdict"] == "healthy" and record["episodes"] == [] and record["actions"] == []
    assert record["step"] == 8 and record["on_unhealthy"] == "warn"
    scalars = events(run_dir)
    tags = set(scalars.Tags()["scalars"])
    assert {"health/grad_g", "health/grad_d", "health/weight_g", "health/weight_d", "health/diversity"} <= tags
    assert [e.value for e in scalars.Scalars("health/unhealthy")] == [0, 0, 0, 0]
    assert all(e.value > 0 for e in scalars.Scalars("health/grad_d") + scalars.Scalars("health/weight_g"))
    assert not (run_dir / "checkpoints" / "healthy.pt").exists()  # kept for rollback only
    assert "history" in checkpoint(run_dir)["health"]
    # The initial weights' norms, at step 0: what divergence measures growth from.
    for tag in ("health/weight_g", "health/weight_d"):
        assert [e.step for e in scalars.Scalars(tag)] == [0, 2, 4, 6, 8]
    assert record["data"] == {"train_images": 5000, "labelled": True}  # what the doctor reads back


def test_warn_records_the_episode_warns_once_and_trains_to_the_end(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(monitor, "diagnose", forced(start=4))
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="gantrain"):
        assert train(run_dir, BASE) == "finished"
    assert checkpoint(run_dir)["step"] == 8
    record = _record(run_dir)
    assert record["verdict"] == "unhealthy: mode_collapse"
    assert record["episodes"] == [
        {
            "cause": "mode_collapse",
            "start": 4,
            "end": None,
            "explanation": "Forced by the test.",
            "overrides": list(OVERRIDES),
        }
    ]
    warnings = [r.getMessage() for r in caplog.records if "unhealthy" in r.getMessage()]
    assert warnings == ["unhealthy: mode_collapse at step 4: Forced by the test. Try: " + " ".join(OVERRIDES)]
    assert [e.value for e in events(run_dir).Scalars("health/unhealthy")] == [0, 1, 1, 1]
    assert _texts(run_dir) == [warnings[0].removeprefix("unhealthy: ")]


def test_stop_ends_the_run_at_the_diagnosis_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor, "diagnose", forced(start=4))
    run_dir = tmp_path / "run"
    assert train(run_dir, [*BASE, "++trainer.on_unhealthy=stop"]) == "unhealthy"
    assert checkpoint(run_dir)["step"] == 4
    stopped = _record(run_dir)["stopped"]
    assert stopped["step"] == 4 and stopped["causes"] == ["mode_collapse"]
    assert stop_message(run_dir).startswith("mode_collapse at step 4: Forced by the test. Try: optim.g.lr")


def forcing_env(tmp_path: Path, steps: str) -> dict:
    """The environment of a CLI process (its own interpreter) in which a sitecustomize forces
    ``d_won`` (fix lower_lr) at the log steps that ``steps``, a Python condition on
    ``step``, admits, the first time each is seen."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from gantrain.health import monitor\n"
        "from gantrain.health.diagnose import Diagnosis\n"
        "seen = set()\n"
        "def diagnose(history, context, thresholds=None):\n"
        "    step = history['loss/d'][-1][0]\n"
        f"    holds = ({steps}) and step not in seen\n"
        "    seen.add(step)\n"
        "    return [Diagnosis('d_won', step, 'Forced.', ('optim.d.lr=0.0001',), 'lower_lr')] if holds else []\n"
        "monitor.diagnose = diagnose\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.slow
def test_stop_through_the_cli_exits_1_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    env = forcing_env(tmp_path, "step >= 4")
    out = gantrain(*BASE, "++trainer.on_unhealthy=stop", f"hydra.run.dir={run_dir}", cwd=tmp_path, env=env, fresh=True)
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("gantrain:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("gantrain: unhealthy: d_won at step 4: Forced. Try: optim.d.lr=0.0001"), lines
    assert str(run_dir) in lines[0]
    assert checkpoint(run_dir)["step"] == 4


@pytest.mark.slow
def test_a_sweep_goes_on_past_a_stopped_run_and_exits_1_naming_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    stale = sweep_dir / "earlier" / "health.json"  # a stopped run of an earlier sweep in the same folder
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"stopped": {"step": 2, "causes": ["d_won"], "message": "old"}}))
    os.utime(stale, (0, 0))
    env = forcing_env(tmp_path, "step >= 4")
    args = [*BASE, "++trainer.on_unhealthy=stop", "trainer.steps=2,8", f"hydra.sweep.dir={sweep_dir}"]
    out = gantrain("-m", *args, cwd=tmp_path, env=env, fresh=True)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("gantrain:")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("gantrain: unhealthy: d_won at step 4") and str(sweep_dir / "1") in lines[0], lines
    assert lines[1].startswith("gantrain: unhealthy: 1 of the sweep's runs stopped by a diagnosis (1); "), lines
    assert f"gantrain-doctor {sweep_dir}" in lines[1]
    assert checkpoint(sweep_dir / "0")["step"] == 2 and checkpoint(sweep_dir / "1")["step"] == 4


def test_rollback_returns_to_the_healthy_checkpoint_with_lower_learning_rates(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor, "diagnose", forced(steps={6}))
    run_dir = tmp_path / "run"
    overrides = [*BASE, "++trainer.on_unhealthy=rollback"]
    trainer = build_trainer(compose_config(overrides), run_dir, overrides)
    lr_g, lr_d = trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]
    assert trainer.fit() == "finished"
    trainer.logger.close()
    state = checkpoint(run_dir)
    assert state["step"] == 8 and state["rollbacks"] == 1
    assert state["optim"]["g"]["param_groups"][0]["lr"] == pytest.approx(lr_g / 2)
    assert state["optim"]["d"]["param_groups"][0]["lr"] == pytest.approx(lr_d / 2)
    record = _record(run_dir)
    (action,) = record["actions"]
    assert action == {
        "action": "rollback",
        "step": 6,
        "to_step": 4,
        "causes": ["mode_collapse"],
        "fixes": ["lower_lr"],
        "lr_scale": 0.5,
        "rollback": 1,
    }
    assert [(e["cause"], e["start"], e["end"]) for e in record["episodes"]] == [("mode_collapse", 6, 6)]
    assert state["health"]["actions"] == [action]
    assert torch.load(run_dir / "checkpoints" / "healthy.pt", weights_only=True)["step"] == 8
    scalars = events(run_dir)
    assert [e.value for e in scalars.Scalars("health/rollbacks")] == [1]
    assert any("rolled back to step 4" in text for text in _texts(run_dir))


def test_rollback_switches_diffaugment_on_and_a_resume_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor, "diagnose", forced("d_overfits", "augment", steps={6}))
    run_dir = tmp_path / "run"
    overrides = [*BASE, "++trainer.on_unhealthy=rollback"]
    lr = compose_config(overrides).optim.g.lr
    assert train(run_dir, overrides) == "finished"
    state = checkpoint(run_dir)
    (action,) = _record(run_dir)["actions"]
    assert action["fixes"] == ["augment"] and action["augment"] == "diffaugment" and action["lr_scale"] == 1
    assert state["optim"]["g"]["param_groups"][0]["lr"] == pytest.approx(lr)  # the rates stay
    assert state["health"]["actions"] == [action]
    resumed = [*overrides, "trainer.steps=10", f"resume={run_dir}"]
    trainer = build_trainer(compose_config(resumed), run_dir, resumed)
    assert isinstance(trainer.model.augment, DiffAugment) and trainer.model.augment.policy == (
        "color",
        "translation",
        "cutout",
    )
    assert trainer.health.context.augment == "diffaugment" and trainer.health.actions == [action]
    assert trainer.fit() == "finished"
    trainer.logger.close()
    assert checkpoint(run_dir)["step"] == 10 and _record(run_dir)["actions"] == [action]


@pytest.mark.parametrize(
    "cause, fix, extra, why",
    [
        ("no_progress", "none", [], "no rollback fixes this"),
        ("mode_collapse", "lower_lr", ["trainer.checkpoint_every=100"], "no checkpoint was written while"),
        ("mode_collapse", "lower_lr", ["trainer.max_rollbacks=0"], "rollbacks (trainer.max_rollbacks) are used up"),
    ],
)
def test_a_rollback_that_cannot_be_made_stops_the_run(tmp_path, monkeypatch, cause, fix, extra, why):
    monkeypatch.setattr(monitor, "diagnose", forced(cause, fix, start=4))
    run_dir = tmp_path / "run"
    assert train(run_dir, [*BASE, "++trainer.on_unhealthy=rollback", *extra]) == "unhealthy"
    record = _record(run_dir)
    assert record["actions"] == [] and why in record["stopped"]["message"]
    assert checkpoint(run_dir)["step"] == 4


def test_a_checkpoint_from_before_health_existed_still_resumes(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, [*BASE, "trainer.steps=4"])
    path = run_dir / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["health"]
    torch.save(state, path)
    assert train(run_dir, [*BASE, "trainer.steps=6", f"resume={run_dir}"]) == "finished"
    assert checkpoint(run_dir)["step"] == 6 and _record(run_dir)["verdict"] == "healthy"


@pytest.mark.slow
def test_every_process_under_torchrun_rolls_back_alike(tmp_path):
    # Rank 0 alone diagnoses; both processes must roll back together, or they would wait on
    # each other at the next all-reduce (and the run would hang, or its weights differ).
    from test_distributed import CLI, launch

    run_dir = tmp_path / "run"
    overrides = [*BASE, "trainer.progress=false", "++trainer.on_unhealthy=rollback", f"hydra.run.dir={run_dir}"]
    lr = compose_config(BASE).optim.g.lr
    done = launch(CLI, *overrides, cwd=tmp_path, env=forcing_env(tmp_path, "step == 6"))
    assert done.returncode == 0, done.stderr[-3000:]
    state = checkpoint(run_dir)
    assert state["step"] == 8 and state["rollbacks"] == 1 and state["env"]["processes"] == "2"
    assert state["optim"]["g"]["param_groups"][0]["lr"] == pytest.approx(lr / 2)
    assert [(a["step"], a["to_step"]) for a in _record(run_dir)["actions"]] == [(6, 4)]
