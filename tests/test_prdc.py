"""Precision, recall, density and coverage (gantrain/metrics/prdc.py) on constructed
distributions: they must move the way Kynkäänniemi et al. (2019) and Naeem et al. (2020) say."""

import math

import pytest
import torch

from gantrain.metrics.prdc import DC_K, prdc


def gaussian(n: int, seed: int, d: int = 16) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_identical_sets_score_one_and_density_counts_each_ball_plus_itself():
    real = gaussian(500, 0)
    scores = prdc(real, real.clone())
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    # Each real ball holds its own centre and its k neighbours: k + 1 fakes in k balls each on average.
    assert scores["density"] == pytest.approx((DC_K + 1) / DC_K)


def test_two_samples_of_one_distribution_match_the_papers_expectations():
    n = 1000
    scores = prdc(gaussian(n, 0), gaussian(n, 1))
    # Naeem et al., Lemma 2: E[coverage] = 1 - prod_{i=1..k} (N - i) / (M + N - i); E[density] = 1.
    expected = 1 - math.prod((n - i) / (2 * n - i) for i in range(1, DC_K + 1))
    assert scores["coverage"] == pytest.approx(expected, abs=0.02)
    assert scores["density"] == pytest.approx(1.0, abs=0.1)
    assert scores["precision"] > 0.7 and scores["recall"] > 0.7  # not 1: k-NN balls miss some of the support


def test_a_shifted_set_loses_precision_and_density():
    real, same = gaussian(1000, 0), gaussian(1000, 1)
    before = prdc(real, same)
    after = prdc(real, same + 1.0)
    assert after["precision"] < before["precision"] / 2 and after["density"] < before["density"] / 2
    far = prdc(real, same + 5.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_collapsed_set_keeps_precision_and_loses_recall_and_coverage():
    real = gaussian(1000, 0)
    collapsed = real[:1] + 0.01 * gaussian(1000, 2)  # every fake near one real point
    scores = prdc(real, collapsed)
    assert scores["precision"] == 1.0  # every fake is realistic ...
    assert scores["recall"] < 0.01 and scores["coverage"] < 0.02  # ... and they show one real image


def test_blocks_and_devices_do_not_change_the_numbers():
    real, fake = gaussian(300, 0), gaussian(200, 1) + 0.3
    whole = prdc(real, fake, block=10_000)
    assert prdc(real, fake, block=7) == whole
    if torch.cuda.is_available():
        assert prdc(real, fake, device="cuda") == pytest.approx(whole, abs=2e-3)


def test_too_few_points_for_the_neighbourhoods():
    with pytest.raises(ValueError, match="at least 6"):
        prdc(gaussian(5, 0), gaussian(10, 1))
