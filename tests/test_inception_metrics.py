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
from gantrain.metrics import inception_weights

N = 4  # Inception runs at 299x299: keep the image count tiny on the CPU


def strokes(n: int) -> torch.Tensor:
    """Grey 28x28 'digits': a bright bar on black, shifted from image to image."""
    images = torch.full((n, 1, 28, 28), -1.0)
    for k in range(n):
        images[k, 0, 6 + k % 3 : 22, 9 + 2 * (k % 5) : 13 + 2 * (k % 5)] = 1.0
    return images


def test_no_weights_offline_is_one_user_error(offline):
    with pytest.raises(UserError) as caught:
        inc.inception_metrics([strokes(2)], [strokes(2)], metrics=["fid"])
    message = str(caught.value)
    assert "weights_path" in message and "download" in message
    assert inception_weights.weights_filename() in message and inception_weights.weights_url() in message
    assert "\n" not in message


def test_missing_or_unreadable_weights_file(tmp_path, offline):
    with pytest.raises(UserError, match="weights_path"):
        inc.inception_metrics([strokes(2)], [strokes(2)], weights_path=str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="weights_path"):
        inc.inception_metrics([strokes(2)], [strokes(2)], weights_path=str(garbage))


def test_bad_arguments_fail_before_loading_anything(offline):
    with pytest.raises(UserError, match="choose from fid, kid, is"):
        inc.inception_metrics([], [], metrics=["fid", "lpips"])


@pytest.mark.slow
def test_metrics_run_on_a_weights_file(random_weights):
    real = strokes(N)
    noise = torch.rand(N, 3, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1  # RGB path too
    same = inc.inception_metrics([real[: N // 2], real[N // 2 :]], [real], weights_path=str(random_weights))
    apart = inc.inception_metrics([real], [noise], weights_path=str(random_weights))

    for result in (same, apart):
        assert {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "protocol"} <= set(result)
        assert all(math.isfinite(result[key]) for key in ("fid", "kid_mean", "kid_std", "is_mean", "is_std"))
        protocol = result["protocol"]
        assert protocol["n_real"] == N and protocol["n_fake"] == N
        assert protocol["weights"] == str(random_weights)
        # KID subsets of N // 2, not N: with N the 100 subsets would all be the same set and the std 0.
        assert protocol["kid_subset_size"] == N // 2 < N and protocol["kid_subsets"] == 100
        assert "rounding" in protocol["input"] and "N // 2" in protocol["kid_subset_rule"]
        assert result["kid_std"] > 0
    assert abs(same["fid"]) < 1e-3 * apart["fid"] and apart["fid"] > 0
    assert same["kid_mean"] < apart["kid_mean"]
    assert apart["is_mean"] >= 1.0 - 1e-6


def test_cached_default_weights_work_offline(offline, random_weights):
    offline.mkdir(parents=True)
    (offline / inception_weights.weights_filename()).symlink_to(random_weights)
    result = inc.inception_metrics(None, [strokes(2)], metrics=["is"], is_splits=2)
    assert result["protocol"]["weights"] == "torch-fidelity default"
    assert set(result) == {"is_mean", "is_std", "protocol"} and result["protocol"]["n_real"] == 0


def test_kid_subset_size_is_half_of_n_at_most_1000():
    assert inc.choose_kid_subset_size(4, 4) == 2
    assert inc.choose_kid_subset_size(10, 7) == 3  # the smaller N counts
    assert inc.choose_kid_subset_size(1999, 5000) == 999
    assert inc.choose_kid_subset_size(2000, 2000) == inc.choose_kid_subset_size(50_000, 10_000) == 1000
    assert inc.choose_kid_subset_size(100, 100, largest=20) == 20
    for n in range(4, 2100, 7):
        assert 2 <= inc.choose_kid_subset_size(n, n) < n
    for n_real, n_fake in ((3, 100), (100, 3), (2, 2)):
        with pytest.raises(UserError, match="KID needs at least 4"):
            inc.choose_kid_subset_size(n_real, n_fake)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_std_is_zero_with_subsets_of_n_and_positive_below():
    """What the subset size decides, on torchmetrics' KID itself (features given directly)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 16, generator=g), torch.randn(40, 16, generator=g) + 0.5

    def kid_std(subset_size: int) -> float:
        kid = KernelInceptionDistance(feature=inc._Precomputed(16), subsets=20, subset_size=subset_size)
        kid.update(real, real=True)
        kid.update(fake, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return float(kid.compute()[1])

    assert kid_std(40) == pytest.approx(0.0, abs=1e-6)  # every subset is the whole set
    assert kid_std(inc.choose_kid_subset_size(40, 40)) > 1e-4


def test_uint8_conversion_rounds():
    levels = torch.arange(256, dtype=torch.uint8)
    as_read = levels.float().div(127.5).sub(1.0)  # how gantrain reads real images into [-1, 1]
    assert torch.equal(inc.to_uint8(as_read), levels)  # truncation loses a level on 63 of them

    k = torch.arange(255, dtype=torch.float64)
    for fraction, up in ((0.999, 1), (0.6, 1), (0.4, 0), (0.001, 0)):
        x = ((k + fraction) / 255 * 2 - 1).float()  # level k + fraction
        assert torch.equal(inc.to_uint8(x), (k + up).to(torch.uint8)), fraction

    x = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2  # out of range too
    expected = torch.round((x.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)
    rgb = inc._to_uint8_rgb(x, "generated")
    assert rgb.dtype == torch.uint8 and rgb.shape == (2, 3, 9, 9)
    assert all(torch.equal(rgb[:, c : c + 1], expected) for c in range(3))
