"""data.cache=true: a folder decoded once into a memory-mapped file gives back exactly the
images (and labels) the ordinary loader gives, is reused without decoding, is rebuilt
when a file changes, and trains through the in-memory path."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from gantrain.data import folder as folder_module
from gantrain.data.folder import folder
from gantrain.data.memory import InMemorySource

from conftest import TINY, train


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


def test_training_from_the_cache(tmp_path):
    root = _classes(tmp_path / "pets")
    status = train(tmp_path / "run", [*TINY, "data=folder", f"data.path={root}", "data.image_size=16",
                                      "data.cache=true", f"data.cache_dir={tmp_path / 'cache'}", "trainer.steps=3"])
    assert status == "finished" and list((tmp_path / "cache").glob("*_images.npy"))


def test_cache_without_a_folder_is_one_line(tmp_path):
    from gantrain.errors import UserError

    with pytest.raises(UserError, match="data.cache_dir"):
        folder(str(_classes(tmp_path / "pets")), image_size=16, cache=True, cache_dir=None)


def test_the_in_memory_stream_yields_the_batches_the_loader_yields(tmp_path):
    root = _classes(tmp_path / "pets")
    plain = folder(str(root), image_size=16)
    cached = folder(str(root), image_size=16, cache=True, cache_dir=str(tmp_path / "cache"))
    from_loader, from_memory = iter(plain.stream(4, seed=3)), iter(cached.stream(4, seed=3))
    for _ in range(6):  # past the end of an epoch (10 images, batches of 4)
        a, b = next(from_loader), next(from_memory)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
