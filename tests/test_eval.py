"""Sample-quality evaluation wired into training and into ``gantrain-eval``: reports
in TensorBoard and JSON, the best checkpoint, the floor, and the errors."""

import json
import subprocess
import sys

import torch

from conftest import TINY, checkpoint, events, train
from fixtures import write_mnist


def mnist_run(tmp_path, *extra):
    write_mnist(tmp_path / "data", n_train=60)
    return [*TINY, "data=mnist", f"data.root={tmp_path / 'data'}", "data.download=false", "trainer.steps=4",
            "eval.num_samples=20", f"eval.cache_dir={tmp_path / 'cache'}", *extra]


def test_periodic_eval_logs_writes_json_and_keeps_the_best_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path, "eval.every=2"))
    reports = sorted((run_dir / "eval").glob("step_*.json"))
    assert [p.name for p in reports] == ["step_00000002.json", "step_00000004.json"]
    report = json.loads(reports[-1].read_text())
    assert {"classifier_fid", "classifier_score"} <= set(report["metrics"]) <= set(report["metrics"]) | {"class_accuracy"}
    assert set(report["floor"]) >= {"classifier_fid"} and report["protocol"]["num_samples"] == 20
    assert report["floor"]["classifier_fid"] < report["metrics"]["classifier_fid"]  # untrained G vs real digits
    scalars = set(events(run_dir).Tags()["scalars"])
    assert {"eval/classifier_fid", "eval_floor/classifier_fid"} <= scalars
    best = json.loads((run_dir / "eval" / "best.json").read_text())
    values = {json.loads(p.read_text())["step"]: json.loads(p.read_text())["metrics"]["classifier_fid"] for p in reports}
    assert best["metric"] == "classifier_fid" and best["value"] == min(values.values())
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and checkpoint(run_dir)["best"] == {k: best[k] for k in ("metric", "value", "step")}
    assert len(list((tmp_path / "cache").glob("judge_*.pt"))) == 1  # trained once, then reused


def test_gantrain_eval_scores_a_run_and_saves_its_report(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path))
    assert not (run_dir / "eval").exists()  # eval.every=0: nothing during training
    result = subprocess.run([sys.executable, "-m", "gantrain.eval_cli", str(run_dir), "--num-samples", "16",
                             "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "classifier_fid" in result.stdout and "real vs real" in result.stdout
    report = json.loads((run_dir / "eval" / "step_00000004.json").read_text())
    assert report["protocol"]["num_samples"] == 16 and report["source"] == "G"
    assert "eval/classifier_fid" in events(run_dir).Tags()["scalars"]


def test_gantrain_eval_mistakes_are_one_line(tmp_path):
    for args, fragment in [([str(tmp_path / "nothing")], "no exported generator"),
                           ([str(tmp_path), "--num-samples", "1"], "no exported generator")]:
        result = subprocess.run([sys.executable, "-m", "gantrain.eval_cli", *args], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2 and fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_too_many_samples_for_the_data_is_one_line(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path))
    result = subprocess.run([sys.executable, "-m", "gantrain.eval_cli", str(run_dir), "--num-samples", "500",
                             "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "eval.num_samples" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
