"""Sweeps: Hydra's basic launcher and the joblib launcher run a 4-job sweep into 4 run
directories with TensorBoard events and HParams; gantrain-report tables them; the
Optuna sweeper optimises the score each run returns; the Slurm example composes."""

import csv
import os

import pytest
import torch
import yaml
from conftest import TINY, compose_config, gantrain
from fixtures import write_mnist

from gantrain.report import main as report_main

SWEEP = [*TINY, "trainer.steps=2", "optim.g.lr=1e-4,3e-4", "seed=0,1"]


def _runs(sweep_dir):
    return sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())


def _hparams(run_dir) -> dict:
    """The run's hyperparameters as TensorBoard's HParams plugin reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    values = {
        k: v.number_value if v.HasField("number_value") else v.string_value
        for k, v in start.session_start_info.hparams.items()
    }
    metrics = [m.name.tag for m in experiment.experiment.metric_infos]
    return {"hparams": values, "metrics": metrics}


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
@pytest.mark.slow
def test_a_four_job_sweep_gives_four_runs_with_hparams_and_a_report(tmp_path, launcher, capsys):
    sweep_dir = tmp_path / "sweep"
    # fresh: joblib's process pool (loky) does not start inside a child of the fork server.
    result = gantrain("-m", *SWEEP, *launcher, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, fresh=bool(launcher))
    assert result.returncode == 0, result.stderr
    runs = _runs(sweep_dir)
    assert [r.name for r in runs] == ["0", "1", "2", "3"]
    for run in runs:
        assert list((run / "tb").glob("events.out.tfevents.*")) and (run / "checkpoints" / "last.pt").is_file()
    logged = {r.name: _hparams(r) for r in runs}
    assert sorted(v["hparams"]["optim.g.lr"] for v in logged.values()) == pytest.approx([1e-4, 1e-4, 3e-4, 3e-4])
    assert {"loss/d", "loss/g"} <= set(logged["0"]["metrics"])
    assert logged["0"]["hparams"]["model.generator.width"] == 8

    report_main([str(sweep_dir)])
    printed = capsys.readouterr().out
    rows = list(csv.reader((sweep_dir / "report.csv").open()))
    assert rows[0][:3] == ["run", "optim.g.lr", "seed"] and len(rows) == 5
    losses = [float(row[rows[0].index("loss/g")]) for row in rows[1:]]
    assert losses == sorted(losses)  # G's loss, lower first, when the runs did not evaluate
    assert (sweep_dir / "report.md").read_text().startswith("| run | optim.g.lr | seed |")
    assert "loss/g" in printed.splitlines()[0]


def test_parallel_jobs_share_the_cpu_threads():
    from gantrain.engine.runtime import share_machine

    before = torch.get_num_threads()
    try:
        assert share_machine(job_num=1, parallel_jobs=2) is None  # no GPUs here: device=auto decides
        assert torch.get_num_threads() == max(1, (os.cpu_count() or 1) // 2)
    finally:
        torch.set_num_threads(before)


def _evaluating(tmp_path):
    write_mnist(tmp_path / "data", n_train=60)
    return [
        *TINY,
        "data=mnist",
        f"data.root={tmp_path / 'data'}",
        "data.download=false",
        "trainer.steps=3",
        "eval.every=2",
        "eval.num_samples=20",
        f"eval.cache_dir={tmp_path / 'cache'}",
    ]


@pytest.mark.slow
def test_optuna_minimises_the_score_each_run_returns(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    result = gantrain(
        "-m",
        *_evaluating(tmp_path),
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.direction=minimize",
        "hydra.sweeper.sampler.seed=0",
        "optim.g.lr=interval(1e-4,1e-3)",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim.g.lr"}
    scores = {}
    for run in _runs(sweep_dir):
        record = yaml.safe_load((run / "eval" / "best.json").read_text())
        scores[run.name] = record["value"]
        # Evaluated every 2 steps and once more after the last (3rd): every run ends with a score.
        assert sorted(p.name for p in (run / "eval").glob("step_*.json")) == [
            "step_00000002.json",
            "step_00000003.json",
        ]
    assert len(scores) == 3 and best["best_value"] == pytest.approx(min(scores.values()))
    # The report sorts by that same score and names it.
    report_main([str(sweep_dir)])
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:3] == ["run", "optim.g.lr", "best_classifier_fid"]


@pytest.mark.slow
def test_optuna_without_an_evaluation_is_one_line(tmp_path):
    result = gantrain(
        "-m",
        *TINY,
        "trainer.steps=1",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=1",
        "optim.g.lr=interval(1e-4,1e-3)",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("gantrain: error: the Optuna sweeper optimises")


def test_the_slurm_and_optuna_examples_compose():
    cfg = compose_config(["hydra/launcher=slurm", "hydra/sweeper=optuna_lr"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and "optim.g.lr" in cfg.hydra.sweeper.params
    compose_config([])  # the plain config is untouched by the examples


def test_report_mistakes_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path)])
    assert exit_info.value.code == 2 and "no gantrain runs under" in capsys.readouterr().err
