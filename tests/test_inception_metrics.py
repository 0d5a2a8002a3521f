"""FID/KID/IS plumbing on the CPU, with no network and no real Inception weights.

torch-fidelity's InceptionV3 is built with random (seeded, He-initialised) weights and saved in
its own state-dict format, so every path of ``inception_metrics`` runs for real on tiny inputs;
only the numbers' meaning differs from the published weights.
"""

from __future__ import annotations

import math

import pytest
import torch

from gantrain.errors import UserError
from gantrain.metrics import inception as inc

N = 4  # Inception runs at 299x299: keep the image count tiny on the CPU


def strokes(n: int) -> torch.Tensor:
    """Grey 28x28 'digits': a bright bar on black, shifted from image to image."""
    images = torch.full((n, 1, 28, 28), -1.0)
    for k in range(n):
        images[k, 0, 6 + k % 3:22, 9 + 2 * (k % 5):13 + 2 * (k % 5)] = 1.0
    return images


def test_no_weights_offline_is_one_user_error(offline):
    with pytest.raises(UserError) as caught:
        inc.inception_metrics([strokes(2)], [strokes(2)], metrics=["fid"])
    message = str(caught.value)
    assert "eval.inception_weights" in message and "download" in message
    assert inc.weights_filename() in message and inc.weights_url() in message
    assert "\n" not in message


def test_missing_or_unreadable_weights_file(tmp_path, offline):
    with pytest.raises(UserError, match="eval.inception_weights"):
        inc.inception_metrics([strokes(2)], [strokes(2)], weights_path=str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="eval.inception_weights"):
        inc.inception_metrics([strokes(2)], [strokes(2)], weights_path=str(garbage))


def test_bad_arguments_fail_before_loading_anything(offline):
    with pytest.raises(UserError, match="choose from fid, kid, is"):
        inc.inception_metrics([], [], metrics=["fid", "lpips"])


def test_metrics_run_on_a_weights_file(random_weights):
    real = strokes(N)
    noise = torch.rand(N, 3, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1  # RGB path too
    same = inc.inception_metrics([real[:N // 2], real[N // 2:]], [real], weights_path=str(random_weights))
    apart = inc.inception_metrics([real], [noise], weights_path=str(random_weights))

    for result in (same, apart):
        assert {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "protocol"} <= set(result)
        assert all(math.isfinite(result[key]) for key in ("fid", "kid_mean", "kid_std", "is_mean", "is_std"))
        protocol = result["protocol"]
        assert protocol["n_real"] == N and protocol["n_fake"] == N
        assert protocol["weights"] == str(random_weights) and protocol["kid_subset_size"] == N
    assert abs(same["fid"]) < 1e-3 * apart["fid"] and apart["fid"] > 0
    assert same["kid_mean"] < apart["kid_mean"]
    assert apart["is_mean"] >= 1.0 - 1e-6


def test_cached_default_weights_work_offline(offline, random_weights):
    offline.mkdir(parents=True)
    (offline / inc.weights_filename()).symlink_to(random_weights)
    result = inc.inception_metrics(None, [strokes(2)], metrics=["is"], is_splits=2)
    assert result["protocol"]["weights"] == "torch-fidelity default"
    assert set(result) == {"is_mean", "is_std", "protocol"} and result["protocol"]["n_real"] == 0
