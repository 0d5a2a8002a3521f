"""Sample-quality evaluation wired into training and into ``gantrain-eval``: reports
in TensorBoard and JSON, the best checkpoint, the floor, and the errors."""

import json

import pytest
import torch
from conftest import TINY, checkpoint, command, events, train
from fixtures import write_mnist


def mnist_run(tmp_path, *extra):
    write_mnist(tmp_path / "data", n_train=60)
    return [
        *TINY,
        "data=mnist",
        f"data.root={tmp_path / 'data'}",
        "data.download=false",
        "trainer.steps=4",
        "eval.num_samples=20",
        f"eval.cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


def test_periodic_eval_logs_writes_json_and_keeps_the_best_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path, "eval.every=2"))
    reports = sorted((run_dir / "eval").glob("step_*.json"))
    assert [p.name for p in reports] == ["step_00000002.json", "step_00000004.json"]
    report = json.loads(reports[-1].read_text())
    assert (
        {"classifier_fid", "classifier_score"} <= set(report["metrics"]) <= set(report["metrics"]) | {"class_accuracy"}
    )
    assert set(report["floor"]) >= {"classifier_fid"} and report["protocol"]["num_samples"] == 20
    assert report["floor"]["classifier_fid"] < report["metrics"]["classifier_fid"]  # untrained G vs real digits
    scalars = set(events(run_dir).Tags()["scalars"])
    assert {"eval/classifier_fid", "eval_floor/classifier_fid"} <= scalars
    best = json.loads((run_dir / "eval" / "best.json").read_text())
    values = {
        json.loads(p.read_text())["step"]: json.loads(p.read_text())["metrics"]["classifier_fid"] for p in reports
    }
    assert best["metric"] == "classifier_fid" and best["value"] == min(values.values())
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and checkpoint(run_dir)["best"] == {
        k: best[k] for k in ("metric", "value", "step")
    }
    assert len(list((tmp_path / "cache").glob("judge_*.pt"))) == 1  # trained once, then reused


class _Memoriser(torch.nn.Module):
    """A judge right on every image it trained on and wrong on every other image of the data
    (class 0 for images not in the data, such as samples)."""

    def __init__(self, train_images: torch.Tensor, label_of: dict) -> None:
        super().__init__()
        self.trained, self.label_of = {self.key(x) for x in train_images}, label_of
        self.unused = torch.nn.Parameter(torch.zeros(1))  # for the device lookups

    @staticmethod
    def key(image: torch.Tensor) -> bytes:
        return ((image.cpu()[0] + 1) * 127.5).round().to(torch.uint8).numpy().tobytes()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        guess = []
        for x in images:
            label = self.label_of.get(self.key(x))
            guess.append(0 if label is None else label if self.key(x) in self.trained else (label + 1) % 10)
        logits = torch.nn.functional.one_hot(torch.tensor(guess), 10).float()
        return torch.cat([logits, torch.zeros(len(images), 118)], 1).to(images.device)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, :10]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


@pytest.mark.slow
def test_conditional_runs_report_class_accuracy_with_its_floor(tmp_path, monkeypatch):
    from gantrain.eval_cli import run_eval
    from gantrain.metrics import classifier

    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path, "model.conditional=true"))
    report = run_eval(_eval_args(run_dir, "--num-samples", "20", "--cache-dir", str(tmp_path / "cache")))
    assert 0 <= report["metrics"]["class_accuracy"] <= 1
    assert set(report["metrics"]) == {
        "classifier_fid",
        "classifier_score",
        "class_accuracy",
        "classifier_precision",
        "classifier_recall",
        "classifier_density",
        "classifier_coverage",
    }
    # The ceiling is the judge's accuracy on the 10 of the 60 real images held out of its training.
    judge = report["protocol"]["classifier"]
    assert (judge["judge_train_images"], judge["judge_held_out_images"]) == (50, 10)
    assert "10 held-out" in judge["class_accuracy_floor"]
    (cached,) = (tmp_path / "cache").glob("judge_*.pt")
    meta = torch.load(cached, weights_only=True)["meta"]
    # These "digits" are random noise: on the 10 it never saw, the judge is near chance (0.1).
    assert report["floor"]["class_accuracy"] == meta["held_out_accuracy"] < 0.5

    # A judge that memorised its training images (and is wrong on all others) has a ceiling of 0, not the 1
    # it would have on the images it trained on.
    digits = write_mnist(tmp_path / "same", n_train=60)  # the run's 60 images again
    label_of = {digit.tobytes(): k % 10 for k, digit in enumerate(digits)}
    monkeypatch.setattr(classifier, "fit_classifier", lambda images, *args, **kwargs: _Memoriser(images, label_of))
    report = run_eval(_eval_args(run_dir, "--num-samples", "20", "--cache-dir", str(tmp_path / "memorised")))
    (cached,) = (tmp_path / "memorised").glob("judge_*.pt")
    meta = torch.load(cached, weights_only=True)["meta"]
    assert meta["train_accuracy"] == 1.0 and report["floor"]["class_accuracy"] == meta["held_out_accuracy"] == 0.0


@pytest.mark.slow
def test_gantrain_eval_scores_a_run_and_saves_its_report(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path))
    assert not (run_dir / "eval").exists()  # eval.every=0: nothing during training
    result = command(
        "gantrain.eval_cli", run_dir, "--num-samples", "16", "--cache-dir", tmp_path / "cache", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "classifier_fid" in result.stdout and "real vs real" in result.stdout
    assert "protocol: classifier judge: trained on 50 real images, 10 held out" in result.stdout
    report = json.loads((run_dir / "eval" / "step_00000004.json").read_text())
    assert report["protocol"]["num_samples"] == 16 and report["source"] == "G"
    assert "eval/classifier_fid" in events(run_dir).Tags()["scalars"]


def test_gantrain_eval_mistakes_are_one_line(tmp_path):
    for args, fragment in [
        ([str(tmp_path / "nothing")], "no exported generator"),
        ([str(tmp_path), "--num-samples", "1"], "no exported generator"),
    ]:
        result = command("gantrain.eval_cli", *args, cwd=tmp_path, timeout=120)
        assert result.returncode == 2 and fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_too_many_samples_for_the_data_is_one_line(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path))
    result = command(
        "gantrain.eval_cli", run_dir, "--num-samples", "500", "--cache-dir", tmp_path / "cache", cwd=tmp_path
    )
    assert result.returncode == 2 and "eval.num_samples" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _eval_args(run_dir, *extra):
    from gantrain.eval_cli import parse

    return parse([str(run_dir), *extra])


@pytest.mark.slow
def test_gantrain_eval_inception_metrics_with_a_weights_file(tmp_path, random_weights):
    from gantrain.eval_cli import run_eval

    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path))
    report = run_eval(
        _eval_args(
            run_dir,
            "--metrics",
            "inception",
            "--num-samples",
            "4",
            "--inception-weights",
            str(random_weights),
            "--device",
            "cpu",
        )
    )
    assert {"fid", "kid_mean", "kid_std", "is_mean", "is_std"} <= set(report["metrics"])
    assert {"fid", "kid_mean"} <= set(report["floor"])
    assert report["protocol"]["inception"]["weights"] == str(random_weights)
    assert report["protocol"]["inception"]["kid_subset_size"] == 2  # N // 2: the subsets differ
    assert report["metrics"]["kid_std"] > 0
    assert all(value == value for value in report["metrics"].values())  # no NaN


def test_gantrain_eval_inception_offline_without_weights_names_the_option(tmp_path, offline):
    from gantrain.errors import UserError
    from gantrain.eval_cli import run_eval

    run_dir = tmp_path / "run"
    train(run_dir, mnist_run(tmp_path))
    with pytest.raises(UserError, match="eval.inception_weights"):
        run_eval(_eval_args(run_dir, "--metrics", "inception", "--num-samples", "4", "--device", "cpu"))


@pytest.mark.slow
def test_gantrain_eval_on_translation_runs(tmp_path, offline, random_weights):
    from fixtures import write_paired, write_unpaired

    from gantrain.eval_cli import run_eval

    nets = [
        "model.generator.width=8",
        "model.discriminator.width=8",
        "device=cpu",
        "trainer=smoke",
        "data.image_size=32",
        "data.load_size=36",
        "data.num_workers=0",
    ]
    write_paired(tmp_path / "data" / "facades", {"train": 4, "val": 3}, size=(80, 40))
    train(tmp_path / "p2p", ["model=pix2pix", "data=facades", f"data.root={tmp_path / 'data'}", *nets])
    report = run_eval(_eval_args(tmp_path / "p2p", "--device", "cpu"))
    assert set(report["metrics"]) == {"l1", "psnr", "ssim"} and report["protocol"]["num_samples"] == 3
    assert report["protocol"]["inception"].startswith("skipped")  # no weights on this machine
    report = run_eval(_eval_args(tmp_path / "p2p", "--device", "cpu", "--inception-weights", str(random_weights)))
    assert report["metrics"]["fid"] == report["metrics"]["fid"]  # FID of G(A) against B, not NaN
    assert json.loads((tmp_path / "p2p" / "eval" / "step_00000004.json").read_text())["metrics"]["fid"]

    write_unpaired(tmp_path / "u", {"trainA": 4, "trainB": 4, "testA": 2, "testB": 2}, size=(40, 40))
    train(
        tmp_path / "cyc", ["model=cyclegan", "loss=lsgan", "data=unpaired_folder", f"data.path={tmp_path / 'u'}", *nets]
    )
    report = run_eval(_eval_args(tmp_path / "cyc", "--device", "cpu"))
    assert {"cycle_l1_A", "cycle_l1_B"} <= set(report["metrics"])
    assert all(0 <= report["metrics"][k] <= 1 for k in ("cycle_l1_A", "cycle_l1_B"))
