"""A property of the command line, over random command lines (Hypothesis): ``gantrain``
with overrides drawn from every config group's keys, and values of every type (integers
with 0, negatives and huge ones; floats with nan and inf; strings; booleans; lists;
null; new ``+`` keys and ``~`` deletions), either trains, or exits non-zero with at most
two lines on stderr, no traceback, and no run directory left behind.

The keys come from walking the composed config of every model, data, loss and optimizer
option that needs no files (``compose_config``). Runs are tiny (``trainer=smoke``, nets
4 channels wide, 16x16 synthetic images or the bundled MNIST sample, on the CPU); values
that would only make a valid run long (many steps, evaluations, workers) are not drawn.

Each example is the real command in a process of its own, forked from one that imported
gantrain once (``cli_forker.py``, through ``conftest.gantrain``): most examples are refused by the check before the
run, in a fraction of a second. Deterministic (``derandomize``): CI sees the same
examples every time. About a minute on 2 CPU cores (40 examples).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config, gantrain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig

# Every test here is `slow` (pyproject.toml): the contributor's fast loop skips them, CI runs them.
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
GROUPS = {
    "model": ("dcgan", "gan", "cgan", "acgan", "cyclegan", "pix2pix"),
    "data": ("synthetic", "mnist_sample"),
    "loss": ("bce", "hinge", "lsgan", "wgan", "wgan_gp"),
    "optim": ("adam", "rmsprop"),
}
DATA = {
    "synthetic": ["data.size=16", "data.image_size=16", "data.batch_size=4"],
    "mnist_sample": ["data.batch_size=4"],
}
NET_SIZES = {"width": 4, "hidden": 16, "blocks": 1}
# Keys whose valid values only make a run longer (or train a judge, or download weights):
# their positive integers are not drawn (nor their floats, for the same reason).
SLOW = {"trainer.steps", "trainer.d_steps", "eval.every", "eval.num_samples", "data.num_workers", "data.size"}
INTS = st.sampled_from([-(2**63), -1, 0, 1, 2, 3, 2**40, 2**70])
FLOATS = st.sampled_from(["nan", "inf", "-inf", ".inf", "0.0", "-0.5", "0.5", "1e30", "1e-30", "2.5"])
STRINGS = st.sampled_from(["abc", "''", "'nan'", "auto", "none", "'a b'", "${oc.env:GANTRAIN_NOPE}", "'\\''"])
LISTS = st.sampled_from(["[]", "[1,2]", "[0.5,0.999]", "[nan]", "[a]", "[[1]]", "{a: 1}"])
VALUES = st.one_of(INTS.map(str), FLOATS, STRINGS, st.sampled_from(["true", "false", "null"]), LISTS)


def leaves(node, path: str = "") -> list[str]:
    """Every key of a composed config, nodes and leaves (a node may be set to a value too)."""
    keys = [path] if path else []
    if isinstance(node, DictConfig):
        for key in node.keys():
            keys += leaves(node[key], f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        keys += [f"{path}[0]"] if len(node) else []
    return keys


def group_keys() -> dict[str, list[str]]:
    """The keys of each option of each group (composed on its own, under the group's
    node), and under ``""`` the keys of the root and the other groups."""
    keys = {
        f"{group}={option}": sorted({k for k in leaves(compose_config([f"{group}={option}"])) if k.startswith(group)})
        for group, options in GROUPS.items()
        for option in options
    }
    keys[""] = sorted({k for k in leaves(compose_config()) if k.split(".")[0].split("[")[0] not in GROUPS})
    return keys


KEYS = group_keys()
# Leaves whose own value is safe to restate: a valid override that changes nothing.
DEFAULTS = {"trainer.progress": "false", "seed": "3", "speed.amp": "false", "loss.gp_weight": "0", "optim.g.lr": "1e-3"}


@st.composite
def command_lines(draw) -> list[str]:
    choice = {group: draw(st.sampled_from(options)) for group, options in GROUPS.items()}
    keys = sorted({k for group, option in choice.items() for k in KEYS[f"{group}={option}"]} | set(KEYS[""]))
    overrides = {}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["set", "set", "set", "add", "delete"]))
        if kind == "add":
            key = draw(st.sampled_from(["baz", "trainer.foo", "model.bar", "data.qux", "optim.g.eps", "loss.clip"]))
            overrides["+" + key] = draw(VALUES)
            continue
        key = draw(st.sampled_from(keys))
        if kind == "delete":
            overrides["~" + key] = None
            continue
        value = draw(st.one_of(VALUES, st.just(None)))  # None: the value it has (a run that trains)
        if value is None:
            key = draw(st.sampled_from([k for k in keys if k in DEFAULTS]))
            value = DEFAULTS[key]
        if key in SLOW and value not in ("0", "-1", "nan", "-inf") and not value.startswith(("'", "[", "{", "$")):
            value = draw(st.sampled_from(["0", "-1", "abc", "nan"]))  # every bad value, never a long run
        overrides[key] = value
    chosen = {k.lstrip("+~") for k in overrides}
    base = [f"{group}={option}" for group, option in choice.items()] + DATA[choice["data"]]
    base = [o for o in base if o.split("=")[0] not in chosen]
    for group in ("generator", "discriminator"):
        for key, size in NET_SIZES.items():
            path = f"model.{group}.{key}"
            if path in keys and path not in chosen:
                base.append(f"{path}={size}")
    rest = [k if v is None else f"{k}={v}" for k, v in overrides.items()]
    return [*base, "trainer=smoke", "device=cpu", "eval.every=0", *rest]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(args=command_lines())
def test_a_command_line_trains_or_is_refused_in_two_lines(tmp_path_factory, args):
    cwd = tmp_path_factory.mktemp("cwd")
    done = gantrain(*args, cwd=cwd, timeout=60, env={"HYDRA_FULL_ERROR": "0"})
    rc, stderr = done.returncode, done.stderr
    if rc == 0:
        return  # it trained
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) <= 2, f"gantrain {' '.join(args)} (exit {rc}):\n{stderr}"
    assert not any(cwd.iterdir()), f"gantrain {' '.join(args)} left {sorted(p.name for p in cwd.iterdir())}"
