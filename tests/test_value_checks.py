"""The checks of one kind of value each (``gantrain/checks.py``, ``gantrain/validate.py``):
bounds annotated on parameter types, NaN and infinity refused everywhere, and the
lower-bound memory estimate (``gantrain/size_check.py``)."""

from __future__ import annotations

import math

import pytest
from conftest import compose_config

from gantrain.checks import Count, PositiveInt, Weight, at_least, within
from gantrain.config_check import check_config
from gantrain.errors import OptionError, UserError
from gantrain.size_check import check_fits_in_memory
from gantrain.validate import check_value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_at_least_and_within_refuse_non_finite(value):
    with pytest.raises(OptionError, match="lr"):
        at_least("lr", value, 0)
    with pytest.raises(OptionError, match="decay"):
        within("decay", value, 0, 1)


@pytest.mark.parametrize(
    "value,hint,fragment",
    [
        (0, PositiveInt, "net.width=0 must be at least 1"),
        (-1, Count, "net.width=-1 must be at least 0"),
        (-0.5, Weight, "net.width=-0.5 must be at least 0"),
        (-2, PositiveInt | None, "net.width=-2 must be at least 1"),
        (math.nan, float, "net.width=nan is not a finite number"),
        ([0.5, math.inf], list, "(inf in it) is not a finite number"),
        ({"a": math.nan}, dict, "(nan in it)"),
        ("x", PositiveInt, "is not an integer >= 1"),
    ],
)
def test_check_value_refuses_values_against_their_kind(value, hint, fragment):
    with pytest.raises(UserError, match=None) as caught:
        check_value("net.width", value, hint)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("value,hint", [(1, PositiveInt), (0, Count), (None, PositiveInt | None), (0.0, Weight)])
def test_check_value_accepts_values_of_their_kind(value, hint):
    check_value("net.width", value, hint)


def test_the_default_config_fits_and_a_huge_one_does_not():
    cfg = compose_config(["device=cpu"])
    check_config(cfg)
    with pytest.raises(UserError, match=r"needs at least .* GiB .*model.discriminator.width=1000000"):
        check_config(compose_config(["device=cpu", "model.discriminator.width=1000000"]))


@pytest.mark.slow
def test_the_estimate_is_a_lower_bound_for_every_experiment():
    """Every shipped experiment passes the memory check on this machine's host memory."""
    from pathlib import Path

    from gantrain.config import CONF_DIR
    from gantrain.config_check import plain

    for path in sorted((Path(CONF_DIR) / "experiment").glob("*.yaml")):
        tree = plain(compose_config([f"experiment={path.stem}", "device=cpu"]))
        check_fits_in_memory(tree, tree["trainer"]["num_samples"])
