"""``data.max_images=N``: a seeded random N-image subset of any dataset for the training
stream only (``gantrain/data/subset.py``), recorded in ``RUN/data_subset.json``, the same
after a resume, and never the evaluation's reference (the whole dataset)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config, gantrain, train
from fixtures import write_celeba, write_folder, write_idx_images, write_idx_labels, write_paired, write_unpaired
from PIL import Image

import gantrain.build as build
from gantrain.build import build_source, build_trainer, check_config
from gantrain.data.loader import DatasetSource
from gantrain.data.memory import InMemorySource
from gantrain.data.paired import PairedSource
from gantrain.data.spec import DataSpec
from gantrain.data.subset import choose, limit, subset_seed
from gantrain.data.unpaired import UnpairedSource
from gantrain.errors import UserError
from gantrain.run_record import SUBSET_FILE, training_subset

N_TRAIN = 40


def marked_mnist(root: Path) -> Path:
    """MNIST files whose train image k is the constant 6k: a batch says which images it holds."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    marks = np.arange(N_TRAIN, dtype=np.uint8) * 6
    write_idx_images(raw / "train-images-idx3-ubyte", np.broadcast_to(marks[:, None, None], (N_TRAIN, 28, 28)))
    write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(N_TRAIN) % 10)
    write_idx_images(raw / "t10k-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", np.arange(10) % 10)
    return root


def mnist_overrides(root: Path, *extra: str) -> list[str]:
    return [*TINY, "data=mnist", f"data.root={root}", "data.download=false", *extra]


def marks(batch_images: torch.Tensor) -> set[int]:
    """The train positions of a batch of ``marked_mnist`` images."""
    values = ((batch_images[:, 0, 0, 0] + 1) * 127.5).round().long()
    return {int(v) // 6 for v in values}


def test_choice_is_seeded_sorted_nested_and_platform_independent():
    first = choose(1000, 100, seed=0)
    assert torch.equal(first, choose(1000, 100, seed=0))
    assert not torch.equal(first, choose(1000, 100, seed=1))
    assert first.tolist() == sorted(set(first.tolist())) and len(first) == 100
    assert set(choose(1000, 50, seed=0).tolist()) <= set(first.tolist())  # nested subsets of one seed
    assert torch.equal(choose(10, 99, seed=3), torch.arange(10))
    # The generator seed is a hash of (seed, part), fixed here: no per-process hash salt, no platform word size.
    assert subset_seed(0, "images") == 0x48D745BD68C488EB
    assert subset_seed(0, "A") != subset_seed(0, "B") != subset_seed(0, "images")


def test_in_memory_subset_keeps_classes_labels_and_extras():
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 1, 4, 4).contiguous()
    labels = torch.arange(20) % 4
    spec = DataSpec(channels=1, image_size=4, num_classes=4, size=20, class_names=("a", "b", "c", "d"), name="toy")
    source = InMemorySource(images, labels, spec, extras={"attrs": torch.arange(20.0)[:, None]})
    limited, parts = source.subset(6, seed=5)
    index = choose(20, 6, seed=5)
    assert parts["images"].indices == tuple(index.tolist()) and parts["images"].size == 20
    assert torch.equal(limited.images, images[index]) and torch.equal(limited.labels, labels[index])
    assert torch.equal(limited.extras["attrs"][:, 0], index.float())
    assert limited.spec.size == 6 and limited.spec.num_classes == 4 and limited.spec.class_names == spec.class_names
    assert source.spec.size == 20 and len(source.images) == 20  # the whole source is left alone
    seen = set()
    stream = iter(limited.stream(batch_size=3, seed=0))
    for _ in range(6):  # three epochs
        seen |= {int(v) for v in next(stream)["image"][:, 0, 0, 0].add(1).mul(127.5).round()}
    assert seen == set(index.tolist())


def test_whole_set_when_max_images_is_not_below_the_size(caplog):
    spec = DataSpec(channels=1, image_size=4, size=8, name="toy")
    source = InMemorySource(torch.zeros(8, 1, 4, 4, dtype=torch.uint8), None, spec)
    assert limit(source, None, 0) == (source, None)
    with caplog.at_level(logging.WARNING, logger="gantrain"):
        limited, record = training_subset(source, 8, 0, None)
    assert limited is source and record is None
    assert "data.max_images=8 is not below the 8 images of toy: training on all of them" in caplog.text


def test_folder_subset_streams_only_its_files(tmp_path):
    for k in range(12):  # flat folder, image k a constant grey 20k
        (tmp_path / "faces").mkdir(exist_ok=True)
        Image.fromarray(np.full((30, 40), 20 * k, np.uint8)).save(tmp_path / "faces" / f"{k:02d}.png")
    cfg = compose_config(["data=folder", f"data.path={tmp_path / 'faces'}", "data.channels=1", "data.image_size=8"])
    source = build_source(cfg)
    limited, parts = source.subset(5, seed=2)
    index = choose(12, 5, seed=2).tolist()
    assert isinstance(limited, DatasetSource) and limited.spec.size == 5 and len(limited.dataset) == 5
    assert parts["images"].files == tuple(f"{k:02d}.png" for k in index)
    assert parts["images"].root == str(tmp_path / "faces")
    stream = iter(limited.stream(batch_size=5, seed=0))
    for _ in range(2):
        grey = next(stream)["image"][:, 0, 0, 0].add(1).mul(127.5).round().long()
        assert sorted(int(g) // 20 for g in grey) == index
    assert source.spec.size == 12 and len(source.dataset) == 12


def test_labelled_folder_and_celeba_keep_labels_and_name_files(tmp_path):
    write_folder(tmp_path / "pets", {"cat": 4, "dog": 6})
    source = build_source(compose_config(["data=folder", f"data.path={tmp_path / 'pets'}", "data.image_size=8"]))
    limited, parts = source.subset(4, seed=0)
    index = choose(10, 4, seed=0)
    assert torch.equal(limited.class_labels(), source.class_labels()[index])
    assert limited.spec.num_classes == 2 and limited.spec.class_names == ("cat", "dog")
    assert all(f.split("/")[0] in ("cat", "dog") for f in parts["images"].files)
    cached = compose_config(["data=folder", f"data.path={tmp_path / 'pets'}", "data.image_size=8", "data.cache=true"])
    cached.data.cache_dir = str(tmp_path / "cache")
    limited, cached_parts = build_source(cached).subset(4, seed=0)
    assert cached_parts == parts and torch.equal(limited.images, source.images_at(index)[0])
    write_celeba(tmp_path, n=12)
    celeba = build_source(compose_config(["data=celeba", f"data.root={tmp_path}", "data.image_size=8"]))
    _, parts = celeba.subset(3, seed=0)
    assert parts["images"].size == 8 and len(parts["images"].files) == 3  # the train split: 8 of 12
    assert all(f.endswith(".jpg") and "/" not in f for f in parts["images"].files)


def test_paired_subset_limits_training_pairs_only(tmp_path):
    halves = write_paired(tmp_path / "facades", {"train": 6, "val": 3}, size=(32, 16))
    cfg = compose_config(["data=facades", f"data.root={tmp_path}", "data.image_size=16", "data.load_size=16"])
    source = build_source(cfg)
    limited, parts = source.subset(2, seed=1)
    index = choose(6, 2, seed=1).tolist()
    assert isinstance(limited, PairedSource) and limited.spec.size == 2 and limited.spec.pairing == "paired"
    assert limited.validation is source.validation and len(limited.validation) == 3
    assert parts["images"].files == tuple(f"{k}.png" for k in index)
    # BtoA: the model's B is the photo, the left half the fixture wrote.
    batch = next(iter(limited.stream(batch_size=2, seed=0)))
    photos = batch["B"].add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for photo in photos:  # flips only: load_size == image_size leaves no crop
        assert any(
            np.array_equal(photo, halves["train"][k]) or np.array_equal(photo, halves["train"][k][:, ::-1])
            for k in index
        )


def test_unpaired_subset_limits_each_domain(tmp_path):
    write_unpaired(tmp_path / "h2z", {"trainA": 7, "trainB": 3})
    cfg = compose_config(
        ["data=unpaired_folder", f"data.path={tmp_path / 'h2z'}", "data.image_size=8", "data.load_size=8"]
    )
    source = build_source(cfg)
    limited, parts = limit(source, 4, seed=0)
    assert isinstance(limited, UnpairedSource)
    assert parts["A"].indices == tuple(choose(7, 4, 0, "A").tolist()) and parts["B"].indices == (0, 1, 2)
    assert limited.spec.size == 4 and limited.spec.extras["size_a"] == 4 and limited.spec.extras["size_b"] == 3
    assert len(limited.dataset) == 4 and limited.dataset.domain_size("A") == 4
    assert limited.validation == source.validation and len(source.dataset) == 7
    full = source.dataset
    for k in range(4):  # item k of the subset: A is image kept[k] of the whole domain, whatever B
        a = limited.dataset[(k, 11)]["A"]
        assert any(
            torch.equal(a, full.loaded("A", j)) or torch.equal(a, full.loaded("A", j).flip(-1))
            for j in parts["A"].indices
        )


def test_run_trains_on_the_recorded_subset_and_resume_keeps_it(tmp_path, monkeypatch):
    root = marked_mnist(tmp_path / "data")
    run_dir = tmp_path / "run"
    base = mnist_overrides(root, "data.max_images=16", "seed=3")
    train(run_dir, base)
    record = json.loads((run_dir / SUBSET_FILE).read_text())
    chosen = choose(N_TRAIN, 16, seed=3).tolist()
    assert record["indices"] == chosen
    assert {k: record[k] for k in ("max_images", "seed", "dataset", "size", "used")} == {
        "max_images": 16,
        "seed": 3,
        "dataset": "mnist",
        "size": N_TRAIN,
        "used": 16,
    }
    assert "files" not in record  # MNIST is one file of images, no file per image
    # Resumed: the same subset is read back, and the stream yields only its images.
    captured = []
    monkeypatch.setattr(build, "build_evaluator", lambda cfg, source, device: captured.append(source))
    resumed = compose_config([*base, f"resume={run_dir}", "trainer.steps=6", "eval.every=2"])
    trainer = build_trainer(resumed, run_dir, [])
    assert trainer.stream.subset == record
    seen = set()
    for _, batch in zip(range(6), trainer.stream):
        seen |= marks(batch["image"])
    assert seen <= set(chosen) and len(seen) > 8
    # The evaluator's reference is the whole dataset, so is gantrain-eval's (it rebuilds build_source).
    assert captured[0].spec.size == N_TRAIN and len(captured[0].images) == N_TRAIN
    assert build_source(resumed).spec.size == N_TRAIN
    trainer.logger.close()
    # Another subset on resume is refused, naming the keys to restore.
    with pytest.raises(UserError, match=r"trained on a subset of 16 of its 40 images \(data.max_images=16\)"):
        build_trainer(
            compose_config([*base, "data.max_images=24", f"resume={run_dir}", "trainer.steps=6"]), run_dir, []
        )
    with pytest.raises(UserError, match="this config trains on all the images"):
        build_trainer(
            compose_config([*base, "data.max_images=null", f"resume={run_dir}", "trainer.steps=6"]), run_dir, []
        )


def test_max_images_fewer_than_batch_size_is_refused_before_the_run():
    with pytest.raises(UserError, match=r"data.max_images=4 is fewer than data.batch_size=8"):
        check_config(compose_config([*TINY, "data.max_images=4"]))


@pytest.mark.parametrize("value", ["0", "2.5"])
def test_bad_max_images_through_the_cli(tmp_path, value):
    run_dir = tmp_path / "run"
    result = gantrain(*TINY, f"data.max_images={value}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"data.max_images={value}" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_build_source_is_the_whole_dataset():
    # The tools and gantrain-eval rebuild a run's data with build_source: never the subset.
    assert build_source(compose_config([*TINY, "data.max_images=100"])).spec.size == 5000
