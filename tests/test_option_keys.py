"""Errors about a component's own parameters reach the user naming the full config key.

Data sources, losses and the evaluator name their parameters bare (``root``, ``gp_weight``,
``num_samples``: their unit tests match those); the config layer builds them inside
``keyed("data")``, ``keyed("loss")``, ``keyed("eval")`` (``gantrain/errors.py``), so the
command line still says ``data.root``, ``loss.gp_weight``, ``eval.num_samples``. A few
cases run the real ``gantrain`` command; the rest build the trainer in-process, through
the same ``build_trainer`` the command calls.
"""

from __future__ import annotations

import pytest
from conftest import TINY, compose_config, gantrain
from PIL import Image

from gantrain.build import build_trainer
from gantrain.errors import UserError


def one_line_error(result) -> str:
    """The single ``gantrain: error:`` line of a failed command."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("gantrain: error: ")
    return lines[0]


def build_error(tmp_path, overrides: list[str]) -> str:
    with pytest.raises(UserError) as caught:
        build_trainer(compose_config(overrides), tmp_path / "run", overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the real command ------------------------------------------------------------------


def test_a_missing_data_root_names_data_root(tmp_path):
    line = one_line_error(
        gantrain("data=mnist", "data.root=/nonexistent/gantrain-data", "data.download=false", cwd=tmp_path)
    )
    assert "/nonexistent/gantrain-data/MNIST/raw/" in line and "set data.root to" in line
    assert "set download=true" in line or "data.download" in line


def test_a_negative_gradient_penalty_names_loss_gp_weight(tmp_path):
    line = one_line_error(gantrain(*TINY, "loss.gp_weight=-1", cwd=tmp_path))
    assert "loss.gp_weight=-1" in line


def test_too_many_evaluation_samples_names_eval_num_samples(tmp_path):
    line = one_line_error(gantrain(*TINY, "eval.every=1", "eval.num_samples=3000", cwd=tmp_path))
    assert "eval.num_samples=3000 needs 6000 real images" in line and line.endswith("lower eval.num_samples")


# --- through build_trainer ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["data=synthetic", "data.size=8", "data.batch_size=16"], "data.batch_size=16 is larger than the dataset"),
        (["data.split=test"], "data.split='test'"),
        (["data=folder", "data.path=/nonexistent/images"], "set data.path to a folder of images"),
        (["data=folder", "data.path="], "folder needs a data.path=<"),
        (["data=folder", "data.path={images}", "data.channels=2"], "data.channels=2 is not supported"),
        (["data=folder", "data.path={images}", "data.on_bad_file=maybe"], "data.on_bad_file='maybe'"),
        (["data=mnist", "data.split=valid", "data.download=false"], "data.split='valid'"),
        (["loss.variant=bogus"], "loss.variant='bogus'"),
        (["loss=wgan", "loss.clip=-1"], "loss.clip=-1 must be positive"),
        (["loss=wgan", "loss.clip=null"], "set loss.clip (weight clipping"),
        (["loss.r1_weight=-0.5"], "loss.r1_weight=-0.5"),
        (
            ["data=synthetic", "eval.every=1", "eval.num_samples=4", "eval.metrics=[classifier]"],
            "eval.metrics=[classifier] needs MNIST-family data",
        ),
    ],
)
def test_option_errors_name_the_key(tmp_path, overrides, fragment):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "a.png")
    overrides = [o.format(images=tmp_path / "images") for o in overrides]
    assert fragment in build_error(tmp_path, [*TINY, *overrides])


def test_translation_data_options_name_their_keys(tmp_path):
    (tmp_path / "pairs").mkdir()
    sizes = build_error(
        tmp_path,
        [*TINY, "data=paired_folder", f"data.path={tmp_path / 'pairs'}", "data.image_size=16", "data.load_size=12"],
    )
    assert "data.load_size=12 is smaller than data.image_size=16" in sizes  # both keys named
    split = build_error(
        tmp_path,
        [
            *TINY,
            "data=paired_folder",
            f"data.path={tmp_path / 'pairs'}",
            "data.image_size=16",
            "data.load_size=16",
            "data.split=nope",
        ],
    )
    assert split.startswith("data.split='nope' but there is no") and "set data.split to one of" in split
    direction = build_error(
        tmp_path, [*TINY, "data=paired_folder", f"data.path={tmp_path / 'pairs'}", "data.direction=AB"]
    )
    assert direction.startswith("data.direction='AB' is not known")
    missing = build_error(tmp_path, [*TINY, "data=facades", f"data.root={tmp_path / 'elsewhere'}"])
    assert "set data.root to the folder that holds facades/" in missing


def test_a_cache_without_a_folder_names_data_cache_dir(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    message = build_error(
        tmp_path, [*TINY, "data=folder", f"data.path={tmp_path}", "data.cache=true", "data.cache_dir="]
    )
    assert "needs data.cache_dir: a folder for the decoded images" in message


def test_missing_inception_weights_name_eval_inception_weights(tmp_path):
    message = build_error(
        tmp_path,
        [
            *TINY,
            "data=synthetic",
            "eval.every=1",
            "eval.num_samples=4",
            "eval.metrics=[inception]",
            "eval.inception_weights=/nonexistent/inception.pth",
        ],
    )
    assert message.startswith("eval.inception_weights=/nonexistent/inception.pth: no such file")
