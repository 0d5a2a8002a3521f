"""A non-editable install carries the configs and the bundled data, and runs from any
directory; CI runs exactly the README's test command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in command
    assert command in (ROOT / "README.md").read_text()


def test_every_subpackage_is_in_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gantrain").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"


@pytest.mark.slow
def test_wheel_installs_and_trains_from_another_directory(tmp_path):
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheels.glob("gantrain-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True, timeout=300
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import gantrain, gantrain.cli as c; print(gantrain.__file__); print(c.CONF_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, conf_dir = where.stdout.split()
    assert module_file.startswith(str(site)) and conf_dir.startswith(str(site))
    assert (Path(conf_dir) / "train.yaml").is_file() and (Path(conf_dir) / "data" / "mnist_sample.yaml").is_file()
    assert (Path(conf_dir) / "hydra" / "launcher" / "slurm.yaml").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "gantrain.cli", *TINY, "trainer.steps=2"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert list((elsewhere / "outputs").glob("*/*/checkpoints/last.pt"))  # trained on the bundled sample
