"""``gantrain-doctor`` on run directories whose TensorBoard events are written here with
``SummaryWriter`` (the histories of test_diagnose.py: a healthy and a collapsed run), a
config composed like the CLI's; exit codes 0/1/2, multirun folders, older runs without
health tags, a run still writing, and gantrain-report's verdict column. Seconds each."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY, command, compose_config
from omegaconf import OmegaConf
from test_diagnose import EVERY, POINTS, healthy, with_values
from torch.utils.tensorboard import SummaryWriter

from gantrain.doctor import main
from gantrain.health.history import read_context, read_history
from gantrain.report import main as report_main

STEPS = EVERY * POINTS


def collapsed() -> dict:
    return with_values(healthy(), "health/diversity", 80, lambda k, v: max(0.05, v - 0.1 * k))


def fake_run(run: Path, history: dict, overrides: tuple[str, ...] = (), close: bool = True) -> SummaryWriter:
    """A run directory as gantrain leaves it: the composed config and overrides under
    .hydra/, and ``history`` as TensorBoard scalars under tb/."""
    listed = [*TINY, f"trainer.steps={STEPS}", *overrides]
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_config(listed), run / ".hydra" / "config.yaml")
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(listed))
    writer = SummaryWriter(log_dir=str(run / "tb"))
    for tag, points in history.items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.flush()
    if close:
        writer.close()
    return writer


def doctor(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_a_healthy_run_exits_0_and_a_collapsed_one_1(tmp_path, capsys):
    fake_run(tmp_path / "good", healthy())
    fake_run(tmp_path / "bad", collapsed())
    code, out, _ = doctor(capsys, str(tmp_path / "good"))
    assert code == 0 and "verdict: healthy" in out and f"step {STEPS} of {STEPS}" in out
    code, out, _ = doctor(capsys, str(tmp_path / "bad"))
    assert code == 1 and "verdict: unhealthy: mode_collapse" in out
    assert "steps 4450-now: mode_collapse: Mode collapse: the samples' diversity fell to" in out
    assert "try: optim.g.lr=0.0001 optim.d.lr=0.0001" in out and "-now:" in out
    # Both at once: a block each and a summary; the worst decides the exit status.
    code, out, _ = doctor(capsys, str(tmp_path / "good"), str(tmp_path / "bad"))
    assert code == 1 and "2 runs: 1 healthy, 1 unhealthy" in out


@pytest.mark.slow
def test_a_multirun_folder_gets_a_block_per_run_and_json(tmp_path, capsys):
    sweep = tmp_path / "multirun"
    fake_run(sweep / "0", healthy(), ("optim.g.lr=2e-4",))
    fake_run(sweep / "1", collapsed(), ("optim.g.lr=4e-4",))
    code, out, _ = doctor(capsys, str(sweep))
    assert code == 1 and out.count("verdict:") == 2 and f"{sweep / '1'}: unhealthy: mode_collapse" in out
    code, out, _ = doctor(capsys, "--json", str(sweep))
    record = json.loads(out)
    assert code == 1 and record["healthy"] is False
    assert [(Path(r["run"]).name, r["verdict"]) for r in record["runs"]] == [
        ("0", "healthy"),
        ("1", "unhealthy: mode_collapse"),
    ]
    episode = record["runs"][1]["episodes"][0]
    assert episode["cause"] == "mode_collapse" and episode["end"] is None and episode["start"] > 80 * EVERY
    # gantrain-report shows the verdict, from the same rules, as its last column.
    report_main([str(sweep)])
    rows = list(csv.reader((sweep / "report.csv").open()))
    assert rows[0][-1] == "verdict"
    assert {row[0]: row[-1] for row in rows[1:]} == {"0": "healthy", "1": "unhealthy: mode_collapse"}
    healthy_only = tmp_path / "healthy_only"
    fake_run(healthy_only / "0", healthy())
    assert doctor(capsys, "--json", str(healthy_only))[0] == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    code, out, err = doctor(capsys, str(tmp_path / "missing"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "no such folder" in err
    code, _, err = doctor(capsys, str(tmp_path))
    assert code == 2 and "no gantrain runs under" in err
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("{not: [yaml")
    code, _, err = doctor(capsys, str(tmp_path / "run"))
    assert code == 2 and "cannot be read" in err and "Traceback" not in err


def test_older_runs_are_judged_from_losses_alone_and_said_so(tmp_path, capsys):
    losses = {tag: points for tag, points in healthy().items() if not tag.startswith("health/")}
    fake_run(tmp_path / "old", losses)
    code, out, _ = doctor(capsys, str(tmp_path / "old"))
    assert code == 0 and "no health/ signals" in out
    won = with_values(with_values(losses, "loss/d", 60, 0.01), "loss/g", 60, 8.0)
    fake_run(tmp_path / "won", won)
    code, out, _ = doctor(capsys, str(tmp_path / "won"))
    assert code == 1 and "d_won" in out and "optim.d.lr=0.0001" in out


def test_a_running_run_and_one_with_no_events_yet(tmp_path, capsys):
    history = {tag: [p for p in points if p[0] <= 95 * EVERY] for tag, points in collapsed().items()}
    writer = fake_run(tmp_path / "running", history, close=False)  # still open, as while training
    try:
        code, out, _ = doctor(capsys, str(tmp_path / "running"))
        assert code == 1 and f"step {95 * EVERY} of {STEPS}" in out and "mode_collapse" in out
    finally:
        writer.close()
    fake_run(tmp_path / "fresh", {})
    code, out, _ = doctor(capsys, str(tmp_path / "fresh"))
    assert code == 0 and "no scalars logged yet" in out


def test_the_context_comes_from_the_runs_config(tmp_path):
    fake_run(tmp_path / "a", {}, ("loss=wgan_gp", "optim.d.lr=1e-4", "data.max_images=500", "augment=diffaugment"))
    (tmp_path / "a" / "data_subset.json").write_text(json.dumps({"max_images": 500, "used": 500, "size": 5000}))
    context = read_context(tmp_path / "a")
    assert context.noise_model and context.labelled and context.wasserstein and context.augment == "diffaugment"
    assert (context.lr_g, context.lr_d, context.train_images, context.steps) == (2e-4, 1e-4, 500, STEPS)
    assert context.eval_metric is None  # eval.every=0: the run does not evaluate
    fake_run(tmp_path / "b", {}, ("model=pix2pix", "data=facades", "eval.every=100", "augment=ada"))
    context = read_context(tmp_path / "b")
    assert not context.noise_model and not context.wasserstein and context.augment == "ada"
    assert context.eval_metric == "fid" and context.eval_lower_is_better and context.train_images is None
    fake_run(tmp_path / "c", {}, ("eval.every=100",))  # MNIST: the judge's FID picks best.pt
    assert read_context(tmp_path / "c").eval_metric == "classifier_fid"
    assert read_history(tmp_path / "missing") == {}


def test_the_command_line(tmp_path):
    fake_run(tmp_path / "bad", collapsed())
    result = command("gantrain.doctor", tmp_path / "bad", cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "mode_collapse" in result.stdout, result.stderr


def test_the_suggested_overrides_compose():
    """Every override a diagnosis suggests is one a user can paste (adam and rmsprop both
    have optim.g.lr/optim.d.lr; DiffAugment is the Wasserstein critic's augmentation)."""
    from gantrain.config_check import check_config

    for extra in (
        ["optim.g.lr=0.0001", "optim.d.lr=0.0001", "augment=ada"],
        ["optim=rmsprop", "optim.g.lr=2.5e-05", "optim.d.lr=2.5e-05"],
        ["loss=wgan_gp", "augment=diffaugment"],
    ):
        check_config(compose_config([*TINY, *extra]))
