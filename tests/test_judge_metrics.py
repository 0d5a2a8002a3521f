"""The download-free metrics of ``gantrain.metrics.judge``: the Fréchet distance agrees
with a direct scipy computation, the numbers separate real digits from noise, and the
judge's cache reloads, notices changed data and survives a corrupt file. One small
judge (2,000 bundled digits, 2 epochs) is trained for the whole module."""

import logging

import numpy as np
import pytest
import scipy.linalg
import torch

from gantrain.data.mnist import mnist_sample
from gantrain.data.spec import to_unit_range
from gantrain.metrics import classifier
from gantrain.metrics.classifier import SmallCNN
from gantrain.metrics.judge import (
    classifier_score,
    frechet_distance,
    held_out_accuracy,
    judge_cache_key,
    judge_metrics,
    judge_split,
    load_or_train_judge,
    real_floor,
)

N = 500


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 sqrtm(S_a S_b)), straight from the definition."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def test_frechet_distance_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(60, 6, generator=g, dtype=torch.float64)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = torch.randn(80, 6, generator=g, dtype=torch.float64) @ mix + 0.5
    for x, y in ((a, b), (b, a), (a, a[:40] * 2)):
        assert frechet_distance(x, y) == pytest.approx(reference_frechet(x.numpy(), y.numpy()), rel=1e-6, abs=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a.float(), b.float()) == pytest.approx(reference_frechet(a.numpy(), b.numpy()), rel=1e-4)


def test_classifier_score_extremes():
    eye = torch.eye(10).repeat(30, 1)  # confident and every class equally used: the maximum, K
    assert classifier_score(eye)[0] == pytest.approx(10.0, rel=1e-6)
    assert classifier_score(torch.full((300, 10), 0.1))[0] == pytest.approx(1.0)  # no confidence
    assert classifier_score(torch.eye(10)[[3] * 300])[0] == pytest.approx(1.0, abs=1e-6)  # one class only
    mean, std = classifier_score(eye, splits=3)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_features_are_the_penultimate_layer():
    model = SmallCNN(1, 28, 10).eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    features = model.features(x)
    assert features.shape == (4, 128) and (features >= 0).all()  # after the ReLU
    torch.testing.assert_close(model.classify(features), model(x))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train = mnist_sample(split="train")
    keep = torch.randperm(len(train.images), generator=torch.Generator().manual_seed(0))[:2000]
    images, labels = train.images[keep], train.labels[keep]
    cache = tmp_path_factory.mktemp("judge_cache")
    judge = load_or_train_judge(images, labels, 10, "mnist_sample[train]", cache, epochs=2)
    return judge, cache, images, labels


@pytest.fixture(scope="module")
def holdout():
    """Two disjoint sets of N real digits the judge never saw (shuffled: the file is in class order)."""
    data = mnist_sample(split="holdout")
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(1))
    images, labels = to_unit_range(data.images[order]), data.labels[order]
    return images[:N], images[N : 2 * N], labels[N : 2 * N]


@pytest.mark.slow
def test_real_digits_score_far_better_than_noise(trained, holdout):
    judge = trained[0]
    real_a, real_b, _ = holdout
    noise = torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    floor = real_floor(judge, real_a, real_b)
    bad = judge_metrics(judge, real_a, noise)
    assert set(floor) == set(bad) == {"classifier_fid", "classifier_score"}
    assert 10 * floor["classifier_fid"] < bad["classifier_fid"], (floor, bad)
    assert floor["classifier_score"] > 3 > 1.5 > bad["classifier_score"], (floor, bad)  # range: 1 to 10
    with pytest.raises(ValueError):
        real_floor(judge, real_a, real_b[:-1])  # the floor is only meaningful at the same N


def test_class_accuracy_with_true_and_shuffled_labels(trained, holdout):
    judge = trained[0]
    real_a, real_b, labels_b = holdout
    right = judge_metrics(judge, real_a, real_b, labels_b)["class_accuracy"]
    shuffled = labels_b[torch.randperm(N, generator=torch.Generator().manual_seed(3))]
    wrong = judge_metrics(judge, real_a, real_b, shuffled)["class_accuracy"]
    assert right > 0.8, right
    assert 0.02 < wrong < 0.2, wrong  # chance: 0.1


def _no_training(*args, **kwargs):
    raise AssertionError("the judge was trained again instead of loaded from the cache")


def _instant_training(*args, **kwargs):
    _instant_training.calls += 1
    torch.manual_seed(_instant_training.calls)
    return SmallCNN(1, 28, 10).eval()


@pytest.fixture
def instant(monkeypatch):
    _instant_training.calls = 0
    monkeypatch.setattr(classifier, "fit_classifier", _instant_training)
    return _instant_training


def test_second_call_loads_the_cached_judge(trained, monkeypatch, caplog):
    judge, cache, images, labels = trained
    files = list(cache.glob("judge_*.pt"))
    assert len(files) == 1 and files[0].name.startswith("judge_mnist_sample_train_")
    payload = torch.load(files[0], weights_only=True)  # a plain state dict + metadata
    assert payload["meta"]["epochs"] == 2 and payload["meta"]["num_images"] == 2000
    assert payload["meta"]["num_train"] == 1667 and payload["meta"]["num_held_out"] == 333  # a sixth held out
    monkeypatch.setattr(classifier, "fit_classifier", _no_training)
    with caplog.at_level(logging.INFO, logger="gantrain"):
        again = load_or_train_judge(images, labels, 10, "mnist_sample[train]", cache, epochs=2)
    assert "loaded" in caplog.text and "training" not in caplog.text
    for name, tensor in judge.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor)
    assert not again.training


def test_changed_data_or_recipe_gets_another_cache_file(trained, tmp_path, instant):
    _, _, images, labels = trained
    load_or_train_judge(images, labels, 10, "mnist", tmp_path, epochs=2)
    changed = labels.roll(1)
    load_or_train_judge(images, changed, 10, "mnist", tmp_path, epochs=2)
    assert instant.calls == 2 and len(list(tmp_path.glob("judge_mnist_*.pt"))) == 2
    key = judge_cache_key(images, labels, 10, 2, 0)
    assert key != judge_cache_key(images, changed, 10, 2, 0)
    flipped = images.clone()
    flipped[1234, 0, 14, 14] ^= 1  # one pixel of one image
    assert key != judge_cache_key(flipped, labels, 10, 2, 0)
    assert key != judge_cache_key(images, labels, 10, 3, 0) != judge_cache_key(images, labels, 10, 2, 1)
    assert key == judge_cache_key(images.clone(), labels.clone(), 10, 2, 0)


@pytest.mark.parametrize("garbage", [b"", b"not a torch file", "truncated"])
def test_corrupt_cache_file_is_retrained_and_replaced(trained, tmp_path, instant, caplog, garbage):
    _, _, images, labels = trained
    load_or_train_judge(images, labels, 10, "mnist", tmp_path, epochs=2)
    (path,) = tmp_path.glob("judge_mnist_*.pt")
    path.write_bytes(path.read_bytes()[:1000] if garbage == "truncated" else garbage)
    with caplog.at_level(logging.INFO, logger="gantrain"):
        model = load_or_train_judge(images, labels, 10, "mnist", tmp_path, epochs=2)
    assert instant.calls == 2 and "unusable" in caplog.text
    payload = torch.load(path, weights_only=True)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(payload["state_dict"][name], tensor)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left behind


def test_judge_split_holds_out_a_seeded_sixth():
    train, held = judge_split(2000)
    assert len(held) == 333 and len(train) == 1667
    assert set(train.tolist()).isdisjoint(held.tolist()) and sorted(train.tolist() + held.tolist()) == list(range(2000))
    assert all(torch.equal(a, b) for a, b in zip(judge_split(2000), (train, held)))  # fixed for a seed
    assert not torch.equal(judge_split(2000, seed=1)[1], held)
    assert len(judge_split(60)[1]) == 10 and len(judge_split(60_000)[1]) == 10_000 and len(judge_split(3)[1]) == 1


def _numbered(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n distinct uint8 'images' whose first two pixels spell their index, labels k % 10."""
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) % 256
    images[:, 0, 0, 1] = torch.arange(n) // 256
    return images, torch.arange(n) % 10


def _index_of(images: torch.Tensor) -> list[int]:
    pixels = ((images[:, 0, 0, :2].cpu() + 1) * 127.5).round().long()
    return (pixels[:, 0] + 256 * pixels[:, 1]).tolist()


class _Memoriser(torch.nn.Module):
    """A 'judge' that recalls the label of every image it trained on and is wrong on all others."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        self.known = dict(zip(_index_of(images), labels.tolist()))
        self.unused = torch.nn.Parameter(torch.zeros(1))  # for the device lookups

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        guess = [self.known.get(k, (k % 10 + 1) % 10) for k in _index_of(images)]
        return torch.nn.functional.one_hot(torch.tensor(guess), 10).float()


def test_the_judge_never_trains_on_the_held_out_images(tmp_path, monkeypatch):
    images, labels = _numbered(600)
    seen = []

    def memorise(train_images, train_labels, num_classes, **kwargs):
        seen.extend(_index_of(train_images))
        return _Memoriser(train_images, train_labels)

    monkeypatch.setattr(classifier, "fit_classifier", memorise)
    judge = load_or_train_judge(images, labels, 10, "numbered", tmp_path, epochs=1, seed=3)
    train, held = judge_split(600, seed=3)
    assert sorted(seen) == train.tolist() and set(seen).isdisjoint(held.tolist())
    # The ceiling is measured where the judge cannot have memorised: a memoriser scores 0 there, 1 on its
    # training images (what the ceiling used to be measured on).
    ceiling, count = held_out_accuracy(judge, images, labels, seed=3)
    assert (ceiling, count) == (0.0, 100)
    assert classifier.accuracy(judge, to_unit_range(images[train]), labels[train]) == 1.0
    meta = torch.load(next(tmp_path.glob("judge_numbered_*.pt")), weights_only=True)["meta"]
    assert meta["train_accuracy"] == 1.0 and meta["held_out_accuracy"] == 0.0 and meta["num_held_out"] == 100
