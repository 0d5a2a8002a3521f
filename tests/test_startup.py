"""Every command starts in about the time ``import torch`` takes (README "Start-up"), pinned
without timing: the paths that end before any training (a config error, the whole config
check of a valid config, every model, dataset, loss and augmentation, and each tool's
module as ``--help`` imports it) import none of the modules that cost seconds or are only
needed later: torchvision (which pulls in ``torch._dynamo``), TorchDynamo itself,
TensorBoard, ONNX, torchmetrics, torch-fidelity and SciPy.

Each check runs in a fresh interpreter: the test process has long imported all of them.
``scripts/startup_times.py`` measures the times themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Every test here is `slow` (pyproject.toml): the contributor's fast loop skips them, CI runs them.
pytestmark = pytest.mark.slow

HEAVY = (
    "torchvision",
    "torch._dynamo",
    "tensorboard",
    "torch.utils.tensorboard",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "torchmetrics",
    "torch_fidelity",
    "scipy",
)
EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))

# Prints the heavy modules loaded after the code under test ran, as JSON.
REPORT = """
import json, sys
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def heavy_modules_after(code: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code + REPORT.format(heavy=HEAVY)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_config_error_and_the_check_of_every_config_import_nothing_heavy(tmp_path):
    """The CLI's own pre-flight, as ``gantrain`` runs it: a bad option refused, a valid one
    checked to the end (its run directory pinned); then ``check_config`` on every model,
    loss, optimizer, augmentation and experiment."""
    combos = [[f"model={m}"] for m in ("gan", "dcgan", "cgan", "acgan")] + [
        ["model=pix2pix", "data=facades"],
        ["model=cyclegan", "data=unpaired_folder", "data.path=x"],
        ["data=folder", "data.path=x"],
        ["data=celeba"],
        ["data=mnist"],
        ["data=fashion_mnist"],
        ["data=synthetic"],
        *([f"loss={loss}"] for loss in ("bce", "hinge", "lsgan", "wgan", "wgan_gp")),
        ["optim=rmsprop"],
        *([f"augment={a}"] for a in ("diffaugment", "ada")),
        ["eval.every=10", "eval.metrics=[inception,classifier]", "eval.best=fid"],
        *([f"experiment={e}"] for e in EXPERIMENTS),
    ]
    code = f"""
from gantrain.cli import prepare_argv
from gantrain.config import compose_config
from gantrain.config_check import check_config
from gantrain.errors import UserError
try:
    prepare_argv(["model.generator.width=0"])
    raise SystemExit("a bad option was not refused")
except UserError:
    pass
prepare_argv(["hydra.run.dir={tmp_path / "run"}"])
for overrides in {combos!r}:
    check_config(compose_config(overrides))
"""
    assert heavy_modules_after(code, tmp_path) == []


@pytest.mark.parametrize(
    "module",
    [
        "gantrain.cli",
        "gantrain.eval_cli",
        "gantrain.report",
        "gantrain.doctor",
        "gantrain.export.cli",
        *(f"gantrain.tools.{tool}" for tool in ("generate", "walk", "arithmetic", "invert", "dissect")),
    ],
)
def test_every_command_answers_help_without_the_heavy_modules(module, tmp_path):
    code = f"""
import sys
import {module} as command
sys.argv = ["{module}", "--help"]
try:
    command.main()
except SystemExit as exit:
    assert exit.code == 0, exit.code
"""
    assert heavy_modules_after(code, tmp_path) == []
