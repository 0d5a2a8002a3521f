"""data.cache=true: a folder decoded once into a memory-mapped file gives back exactly the
images (and labels) the ordinary loader gives, is reused without decoding, is rebuilt
when a file changes, and trains through the in-memory path."""

import os

import numpy as np
import pytest
import torch
from conftest import TINY, train
from PIL import Image

from gantrain.data import folder as folder_module
from gantrain.data.folder import folder
from gantrain.data.memory import InMemorySource
from gantrain.errors import UserError


def _classes(root):
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for k in range(5):
            Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(root / name / f"{k}.png")
    return root


def test_the_cache_gives_back_exactly_what_the_loader_decodes(tmp_path):
    root = _classes(tmp_path / "pets")
    plain = folder(str(root), image_size=16)
    cached = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))
    assert isinstance(cached, InMemorySource) and cached.spec == plain.spec
    expected = torch.stack([plain.dataset[k]["image"] for k in range(len(plain.dataset))])
    labels = torch.stack([plain.dataset[k]["label"] for k in range(len(plain.dataset))])
    assert cached.images.dtype == torch.uint8 and torch.equal(cached.images, expected)
    assert torch.equal(cached.labels, labels)
    assert len(list((tmp_path / "cache").glob("pets_*_images.npy"))) == 1
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_a_second_build_decodes_nothing_and_a_changed_file_rebuilds(tmp_path, monkeypatch):
    root = _classes(tmp_path / "pets")
    first = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))

    def no_decoding(self, index):
        raise AssertionError("decoded an image although the cache holds it")

    with monkeypatch.context() as patch:
        patch.setattr(folder_module.ImageFiles, "__getitem__", no_decoding)
        again = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))
    assert torch.equal(again.images, first.images)
    Image.new("RGB", (20, 24), (255, 0, 0)).save(root / "cats" / "0.png")
    os.utime(root / "cats" / "0.png", ns=(1, 1))  # a new mtime even on coarse clocks
    changed = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))
    assert changed.images[0, 0].float().mean() == 255 and not torch.equal(changed.images, first.images)
    assert len(list((tmp_path / "cache").glob("pets_*_images.npy"))) == 2
    # The cached file itself is never written to (copy-on-write mapping).
    changed.images.zero_()
    assert folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache")).images.max() > 0
    # The key holds each file's mtime, not only its size (an edit that keeps the size) ...
    os.utime(root / "cats" / "0.png", ns=(2, 2))
    folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))
    assert len(list((tmp_path / "cache").glob("pets_*_images.npy"))) == 3
    # ... and what a bad file becomes: a cache built failing on one must not serve a run that skips it.
    folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"), on_bad_file="fail")
    assert len(list((tmp_path / "cache").glob("pets_*_images.npy"))) == 4


def test_training_from_the_cache(tmp_path):
    root = _classes(tmp_path / "pets")
    status = train(
        tmp_path / "run",
        [
            *TINY,
            "data=folder",
            f"data.path={root}",
            "data.image_size=16",
            "data.cache=true",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.steps=3",
        ],
    )
    assert status == "finished" and list((tmp_path / "cache").glob("*_images.npy"))


def test_cache_without_a_folder_is_one_line(tmp_path):
    from gantrain.errors import UserError

    with pytest.raises(UserError, match="cache_dir"):
        folder(str(_classes(tmp_path / "pets")), image_size=16, cache=True, cache_dir=None)


def test_the_in_memory_stream_yields_the_batches_the_loader_yields(tmp_path):
    root = _classes(tmp_path / "pets")
    plain = folder(str(root), image_size=16)
    cached = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))
    from_loader, from_memory = iter(plain.stream(4, seed=3)), iter(cached.stream(4, seed=3))
    for _ in range(6):  # past the end of an epoch (10 images, batches of 4)
        a, b = next(from_loader), next(from_memory)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_flipped_batches_are_the_same_from_the_cache_and_from_the_loader(tmp_path):
    root = _classes(tmp_path / "pets")
    plain = folder(str(root), image_size=16, hflip=True)
    cached = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"), hflip=True)
    unflipped = iter(folder(str(root), image_size=16).stream(4, seed=3))
    from_loader, from_memory = iter(plain.stream(4, seed=3, num_workers=2)), iter(cached.stream(4, seed=3))
    flipped = 0
    for _ in range(6):  # past the end of an epoch
        a, b, c = next(from_loader), next(from_memory), next(unflipped)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        flipped += int((~(a["image"] == c["image"]).flatten(1).all(1)).sum())
    assert 0 < flipped < 24


def test_celeba_cache_keeps_attributes_and_labels(tmp_path, monkeypatch):
    from fixtures import write_celeba

    from gantrain.data import celeba as celeba_module
    from gantrain.data.celeba import celeba

    write_celeba(tmp_path, n=12)
    options = dict(root=str(tmp_path), image_size=16, label_attrs=["Male", "Smiling"], hflip=True)
    plain = celeba(**options)
    cached = celeba(**options, cache=True, cache_dir=str(tmp_path / "cache"))
    assert isinstance(cached, InMemorySource) and cached.spec == plain.spec
    items = [plain.dataset[k] for k in range(len(plain.dataset))]
    assert torch.equal(cached.images, torch.stack([item["image"] for item in items]))
    assert torch.equal(cached.labels, torch.stack([item["label"] for item in items]))
    assert torch.equal(cached.extras["attrs"], torch.stack([item["attrs"] for item in items]))
    assert cached.dataset.attribute_table().shape == (8, 40)  # the tools' attribute lookups still work
    from_loader, from_memory = iter(plain.stream(3, seed=1)), iter(cached.stream(3, seed=1))
    for _ in range(5):  # 2 batches an epoch
        a, b = next(from_loader), next(from_memory)
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)

    def no_decoding(self, index):
        raise AssertionError("decoded a face although the cache holds it")

    monkeypatch.setattr(celeba_module.CelebAImages, "__getitem__", no_decoding)
    again = celeba(**options, cache=True, cache_dir=str(tmp_path / "cache"))
    assert torch.equal(again.images, cached.images)
    assert len(list((tmp_path / "cache").glob("celeba-train_*_images.npy"))) == 1
    with pytest.raises(UserError, match="cache_dir"):
        celeba(root=str(tmp_path), cache=True, cache_dir="")


def test_training_from_a_cached_celeba(tmp_path):
    from fixtures import write_celeba

    write_celeba(tmp_path / "data", n=12)
    status = train(
        tmp_path / "run",
        [
            *TINY,
            "data=celeba",
            f"data.root={tmp_path / 'data'}",
            "data.image_size=16",
            "data.batch_size=4",
            "data.num_workers=0",
            "data.cache=true",
            "data.hflip=true",
            f"data.cache_dir={tmp_path / 'cache'}",
            "trainer.steps=3",
        ],
    )
    assert status == "finished" and list((tmp_path / "cache").glob("celeba-*_images.npy"))
