"""The model contract (gantrain/models/base.py): every model YAML names a complete
GANModel, and nothing outside models/ (and data/, which defines the data kinds) asks
which model or which kind of data it has: no branches on ``pairing``, no ``hasattr``
probes. The proof that a new model is one file is AC-GAN (tests/test_acgan.py)."""

import inspect
import re
from pathlib import Path

import pytest

import gantrain
from gantrain.config import CONF_DIR, compose_config
from gantrain.config_check import model_class
from gantrain.models.base import GANModel

PACKAGE = Path(gantrain.__file__).parent
MODEL_YAMLS = sorted((Path(CONF_DIR) / "model").glob("*.yaml"))


def _target(path: Path) -> dict:
    return {"_target_": compose_config([f"model={path.stem}"]).model._target_}


@pytest.mark.parametrize("path", MODEL_YAMLS, ids=[p.stem for p in MODEL_YAMLS])
def test_every_model_yaml_names_a_complete_model(path):
    cls = model_class(_target(path))
    assert issubclass(cls, GANModel) and not inspect.isabstract(cls), cls
    assert cls.data_kind in ("none", "paired", "unpaired")
    assert set(cls.built_args) >= {"generator", "discriminator"}


def test_a_model_node_that_is_no_gan_model_is_one_clear_error():
    from gantrain.errors import UserError

    with pytest.raises(UserError, match="is not a gantrain model"):
        model_class({"_target_": "torch.nn.Linear"})


def _outside_models() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in ("models", "data")]


@pytest.mark.parametrize(
    "pattern,what",
    [
        (r"pairing\W{0,3}\s*[!=]=|[!=]=\s*\S*pairing", "a branch on the data's pairing"),
        (r"\bhasattr\(", "a hasattr probe"),
        (r"getattr\((self\.)?(model|trainer\.model|run\.G|self\.G|G)\b", "a getattr probe of a model or its G"),
    ],
)
def test_nothing_outside_models_asks_which_model_it_has(pattern, what):
    found = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in _outside_models()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line) and not line.lstrip().startswith("#")
    ]
    assert not found, f"{what} outside models/: {found}"


def test_the_contract_declares_every_part_the_issue_lists():
    declared = {name for name in [*dir(GANModel), *GANModel.__annotations__] if not name.startswith("_")}
    assert {
        "data_kind",
        "check_data",
        "check_options",
        "build_nets",
        "built_args",  # data and construction
        "d_loss",
        "g_loss",
        "after_d_step",  # one step
        "fixed_inputs",
        "sample_grid",
        "validation",
        "validate",
        "calibration_inputs",  # samples
        "evaluator",
        "evaluate",  # quality
        "generator_info",
        "translator",  # what the tools use
        "callable_nets",
        "twice_differentiated",
    } <= declared  # the fast path
    assert {
        "build_nets",
        "d_loss",
        "g_loss",
        "fixed_inputs",
        "sample_grid",
        "evaluate",
        "generator_info",
    } == GANModel.__abstractmethods__
