"""The real loaders read tiny files written in the exact layouts; streams resume exactly."""

from itertools import islice

import numpy as np
import pytest
import torch
from fixtures import write_celeba, write_folder, write_mnist

from gantrain.data.celeba import celeba
from gantrain.data.folder import folder
from gantrain.data.mnist import fashion_mnist, mnist, mnist_sample
from gantrain.data.synthetic import synthetic
from gantrain.errors import UserError


def first_batch(source, batch_size=4):
    return next(iter(source.stream(batch_size, seed=0)))


def test_bundled_sample_is_5000_real_digits():
    source = mnist_sample()
    assert source.spec.size == 5000 and source.spec.num_classes == 10 and source.spec.channels == 1
    assert torch.bincount(source.labels).tolist() == [500] * 10
    batch = first_batch(source)
    assert batch["image"].shape == (4, 1, 28, 28)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    # Real digits: mostly background (-1) with bright strokes, not noise.
    assert (source.images == 0).float().mean() > 0.7


def test_mnist_reads_torchvision_idx_layout(tmp_path):
    train = write_mnist(tmp_path)
    source = mnist(root=str(tmp_path), download=False)
    assert source.spec.size == 40 and source.spec.image_size == 28
    assert torch.equal(source.images[:, 0], torch.from_numpy(train))
    assert mnist(root=str(tmp_path), split="test", download=False).spec.size == 10
    resized = mnist(root=str(tmp_path), image_size=32, download=False)
    assert first_batch(resized)["image"].shape == (4, 1, 32, 32)


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST")
    source = fashion_mnist(root=str(tmp_path), download=False)
    assert source.spec.class_names[0] == "t-shirt" and source.spec.size == 40


def test_fashion_mnist_mirrors_half_of_each_batch_on_request(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST")
    plain = next(iter(fashion_mnist(root=str(tmp_path), download=False).stream(20, seed=3)))["image"]
    flipped = next(iter(fashion_mnist(root=str(tmp_path), download=False, hflip=True).stream(20, seed=3)))["image"]
    mirrored = [not torch.equal(a, b) for a, b in zip(plain, flipped)]
    assert all(torch.equal(b, a.flip(-1) if m else a) for a, b, m in zip(plain, flipped, mirrored))
    assert 3 <= sum(mirrored) <= 17  # about half of the 20 (and the digits are not symmetric)


def test_missing_mnist_says_where_the_files_go(tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path}/MNIST/raw/.*root"):
        mnist(root=str(tmp_path), download=False)


def test_celeba_reads_torchvision_layout(tmp_path):
    attrs = write_celeba(tmp_path, n=12)
    source = celeba(root=str(tmp_path), split="train", image_size=64)
    assert source.spec.size == 8 and len(source.spec.attribute_names) == 40
    assert source.spec.attribute_names[31] == "Smiling"
    item = source.dataset[3]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
    assert torch.equal(item["attrs"], torch.from_numpy(attrs[3]).float())
    assert celeba(root=str(tmp_path), split="test").spec.size == 2
    batch = first_batch(source)
    assert batch["image"].shape == (4, 3, 64, 64) and batch["attrs"].shape == (4, 40)


def test_missing_celeba_names_the_missing_files(tmp_path):
    write_celeba(tmp_path, n=6)
    (tmp_path / "celeba" / "list_attr_celeba.txt").unlink()
    with pytest.raises(UserError, match="missing list_attr_celeba.txt"):
        celeba(root=str(tmp_path))


def test_flat_folder_is_unlabelled(tmp_path):
    write_folder(tmp_path, {"": 5})
    source = folder(str(tmp_path), image_size=16)
    assert source.spec.num_classes == 0 and source.spec.size == 5
    batch = first_batch(source)
    assert batch["image"].shape == (4, 3, 16, 16) and "label" not in batch


def test_nested_folder_labels_by_first_subfolder(tmp_path):
    write_folder(tmp_path, {"cats": 3, "dogs/big": 2, "dogs/small": 2}, mode="L")
    source = folder(str(tmp_path), image_size=16, channels=3)
    assert source.spec.class_names == ("cats", "dogs") and source.spec.size == 7
    assert sorted(source.dataset[k]["label"].item() for k in range(7)) == [0, 0, 0, 1, 1, 1, 1]
    assert source.dataset[0]["image"].shape == (3, 16, 16)  # grey converted to RGB


def test_empty_or_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no images"):
        folder(str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        folder(str(tmp_path / "nope"))


def test_batch_larger_than_dataset_is_a_user_error():
    with pytest.raises(UserError, match="batch_size"):
        synthetic(size=8).stream(16, seed=0)


@pytest.mark.parametrize("cut", [6, 8])  # 6: right at the end of the first epoch
@pytest.mark.parametrize("make", ["memory", "files"])
def test_stream_resumes_at_the_very_next_batch(tmp_path, make, cut):
    if make == "memory":
        source = synthetic(size=20, image_size=8, num_classes=3)
    else:
        write_folder(tmp_path, {"a": 5, "b": 5}, size=(8, 8))
        source = folder(str(tmp_path), image_size=8)
    straight = [b["image"] for b in islice(iter(source.stream(3, seed=5)), 14)]  # crosses epochs
    first = source.stream(3, seed=5)
    head = [b["image"] for b in islice(iter(first), cut)]
    second = source.stream(3, seed=5)
    second.load_state_dict(first.state_dict())
    tail = [b["image"] for b in islice(iter(second), 14 - cut)]
    assert all(len(b) == 3 for b in head + tail)
    assert all(torch.equal(a, b) for a, b in zip(straight, head + tail))
    # Each epoch is a new order of the whole set.
    assert not torch.equal(straight[0], straight[source.spec.size // 3])
    assert not np.allclose(straight[0].numpy(), straight[1].numpy())


def test_the_celeba_integrity_hook_we_override_still_exists():
    # gantrain replaces torchvision's MD5 check by a presence check through this private
    # method; if a torchvision release renames it, this fails instead of silently
    # bringing back the MD5 check (and with it, rejected copies of the annotations).
    from torchvision import datasets

    assert callable(getattr(datasets.CelebA, "_check_integrity", None))


class _WhoLoads(torch.utils.data.Dataset):
    """Items that say which process loaded them: a re-forked worker shows a new pid."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        import os

        return {
            "image": torch.full((1, 2, 2), index, dtype=torch.uint8),
            "index": torch.tensor(index),
            "pid": torch.tensor(os.getpid()),
        }


def test_worker_processes_persist_across_epochs_and_change_no_batch():
    import os

    from gantrain.data.loader import LoaderStream

    rng_before = torch.get_rng_state()
    in_process = list(islice(iter(LoaderStream(_WhoLoads(), 3, seed=7)), 7))  # 3 batches an epoch
    stream = LoaderStream(_WhoLoads(), 3, seed=7, num_workers=2)
    workers = list(islice(iter(stream), 7))
    assert [b["index"].tolist() for b in workers] == [b["index"].tolist() for b in in_process]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(in_process, workers))
    # Two workers served all three epochs: workers forked per epoch would show up to six pids.
    pids = {pid for b in workers for pid in b["pid"].tolist()}
    assert len(pids) == 2 and os.getpid() not in pids and stream.epoch == 2
    # Resumed mid-epoch with workers: the very next batch.
    first = LoaderStream(_WhoLoads(), 3, seed=7, num_workers=2)
    head = list(islice(iter(first), 4))
    second = LoaderStream(_WhoLoads(), 3, seed=7, num_workers=2)
    second.load_state_dict(first.state_dict())
    tail = list(islice(iter(second), 3))
    assert [b["index"].tolist() for b in head + tail] == [b["index"].tolist() for b in in_process]
    # Worker seeds come from the stream's own generator, never from the training RNG.
    assert torch.equal(torch.get_rng_state(), rng_before)


def _random_source(n=40, hflip=True):
    from gantrain.data.memory import InMemorySource
    from gantrain.data.spec import DataSpec

    images = torch.randint(0, 256, (n, 3, 6, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return InMemorySource(images, torch.arange(n) % 3, DataSpec(channels=3, image_size=6, size=n), hflip=hflip)


def test_hflip_mirrors_about_half_of_the_images_on_a_seeded_mask():
    flipped, plain = _random_source(), _random_source(hflip=False)
    a = list(islice(iter(flipped.stream(8, seed=2)), 15))  # 5 batches an epoch: three epochs
    b = list(islice(iter(plain.stream(8, seed=2)), 15))
    mirrored = []
    for x, y in zip(a, b):
        assert torch.equal(x["label"], y["label"])  # same order: only the pixels move
        same = (x["image"] == y["image"]).flatten(1).all(1)
        mirror = (x["image"] == y["image"].flip(-1)).flatten(1).all(1)
        assert bool((same ^ mirror).all())  # each image is itself or its mirror, never anything else
        mirrored.append(mirror)
    share = torch.cat(mirrored).float().mean().item()
    assert 0.35 < share < 0.65
    # No flip without hflip: the batches are the images in the epoch's order.
    stream = plain.stream(8, seed=2)
    order = stream.remaining_order()[:8]
    assert torch.equal(next(iter(stream))["image"], plain.images[order].float() / 127.5 - 1)
    # Another epoch, another mask: the same image is not always mirrored alike.
    assert not torch.equal(mirrored[0], mirrored[5])


def test_hflip_survives_a_resume_and_sharding():
    source = _random_source()
    straight = [b["image"] for b in islice(iter(source.stream(8, seed=4)), 12)]
    first = source.stream(8, seed=4)
    head = [b["image"] for b in islice(iter(first), 7)]  # mid-epoch
    second = source.stream(8, seed=4)
    second.load_state_dict(first.state_dict())
    tail = [b["image"] for b in islice(iter(second), 5)]
    assert all(torch.equal(x, y) for x, y in zip(straight, head + tail))
    # Two processes of batch 4 see the halves of one process's batches of 8, flips included.
    shards = [list(islice(iter(source.stream(4, seed=4, shard=(rank, 2))), 12)) for rank in (0, 1)]
    assert all(torch.equal(torch.cat([x["image"], y["image"]]), z) for x, y, z in zip(*shards, straight))


def test_the_loader_stream_flips_like_the_in_memory_stream():
    from gantrain.data.loader import DatasetSource

    source = _random_source()
    items = [{"image": image, "label": label} for image, label in zip(source.images, source.labels)]
    loader = DatasetSource(items, source.spec, hflip=True)
    for workers in (0, 2):
        from_loader = list(islice(iter(loader.stream(8, seed=5, num_workers=workers)), 12))
        from_memory = list(islice(iter(source.stream(8, seed=5)), 12))
        assert all(
            torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
            for x, y in zip(from_loader, from_memory)
        )
