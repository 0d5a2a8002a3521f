"""pix2pix and CycleGAN data: the real loaders read tiny files written in the exact
layouts, augment both halves of a pair alike and reproducibly, and the download script
installs an archive (served through a file:// URL) or fails in one line, cleanly."""

import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from fixtures import paired_target, write_paired, write_unpaired
from PIL import Image

from gantrain.build import LOADER_KEYS, _without, check_config, instantiate
from gantrain.data.loader import item_seed
from gantrain.data.paired import facades, paired_folder
from gantrain.data.spec import to_unit_range
from gantrain.data.unpaired import unpaired_folder
from gantrain.errors import UserError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "download_pix2pix.py"
SMALL = {"image_size": 16, "load_size": 20}  # files are 32x16: two 16x16 halves


def chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).movedim(-1, -3)  # (..., H, W, C) -> (..., C, H, W)


def rotated(t: torch.Tensor) -> torch.Tensor:
    """``paired_target`` on (..., 3, H, W) tensors."""
    return t[..., [1, 2, 0], :, :]


def batches(source, n, seed=3, batch_size=2, num_workers=0, state=None):
    stream = source.stream(batch_size, seed=seed, num_workers=num_workers)
    if state:
        stream.load_state_dict(state)
    return list(islice(iter(stream), n)), stream


# --- pix2pix: the aligned layout ---------------------------------------------------


def test_paired_folder_reads_the_aligned_layout(tmp_path):
    halves = write_paired(tmp_path, {"train": 6, "val": 2}, size=(32, 16))
    source = paired_folder(str(tmp_path), image_size=16, load_size=16, flip=False)
    assert source.spec.pairing == "paired" and source.spec.size == 6 and source.spec.channels == 3
    assert source.spec.image_size == 16 and source.spec.name == tmp_path.name
    for k in range(6):  # sizes equal, no flip: the halves themselves
        item = source.dataset[k]
        assert set(item) == {"A", "B"} and item["A"].dtype == torch.uint8
        assert torch.equal(item["A"], chw(halves["train"][k]))
        assert torch.equal(item["B"], chw(paired_target(halves["train"][k])))


def test_direction_btoa_swaps_the_halves(tmp_path):
    write_paired(tmp_path, {"train": 3}, size=(32, 16))
    ab = paired_folder(str(tmp_path), image_size=16, load_size=16, flip=False)
    ba = paired_folder(str(tmp_path), direction="BtoA", image_size=16, load_size=16, flip=False)
    for k in range(3):
        assert torch.equal(ab.dataset[k]["A"], ba.dataset[k]["B"])
        assert torch.equal(ab.dataset[k]["B"], ba.dataset[k]["A"])
        assert not torch.equal(ab.dataset[k]["A"], ab.dataset[k]["B"])


def _reference_draw(a_half: np.ndarray, out: torch.Tensor, load_size: int, size: int) -> tuple[int, int, bool]:
    """Which resize_and_crop + flip of the A half gives ``out``: resize to load_size
    (bicubic), then every crop position and both flips are tried."""
    big = np.asarray(Image.fromarray(a_half).resize((load_size, load_size), Image.Resampling.BICUBIC))
    target = out.permute(1, 2, 0).numpy()
    for y in range(load_size - size + 1):
        for x in range(load_size - size + 1):
            crop = big[y : y + size, x : x + size]
            for flipped in (False, True):
                if np.array_equal(crop[:, ::-1] if flipped else crop, target):
                    return x, y, flipped
    raise AssertionError("the item is not a resize + crop (+ flip) of its A half")


def test_the_same_crop_and_flip_reach_both_halves(tmp_path):
    halves = write_paired(tmp_path, {"train": 4}, size=(32, 16))["train"]
    source = paired_folder(str(tmp_path), **SMALL)
    draws = set()
    for seed in range(40):
        index = seed % 4
        item = source.dataset[(index, seed)]
        assert item["A"].shape == (3, 16, 16)
        # B is a pixelwise function of A in the files, so only the same crop and the
        # same flip on both halves keep it one after augmentation.
        assert torch.equal(item["B"], rotated(item["A"]))
        draws.add(_reference_draw(halves[index], item["A"], 20, 16))
    assert {flipped for _, _, flipped in draws} == {False, True}
    assert len({(x, y) for x, y, _ in draws}) >= 5
    # And through a stream, in [-1, 1].
    for batch in batches(source, 6)[0]:
        assert batch["A"].dtype == torch.float32 and batch["A"].min() >= -1 and batch["A"].max() <= 1
        assert torch.equal(batch["B"], rotated(batch["A"]))


def test_no_flip_and_no_crop_when_switched_off(tmp_path):
    halves = write_paired(tmp_path, {"train": 2}, size=(32, 16))["train"]
    source = paired_folder(str(tmp_path), image_size=16, load_size=20, flip=False)
    assert all(not _reference_draw(halves[s % 2], source.dataset[(s % 2, s)]["A"], 20, 16)[2] for s in range(12))
    uncropped = paired_folder(str(tmp_path), image_size=16, load_size=16, flip=False)
    assert all(torch.equal(uncropped.dataset[(0, s)]["A"], chw(halves[0])) for s in range(5))


def test_item_seeds_depend_on_seed_epoch_and_position_only():
    seeds = {item_seed(s, e, p) for s in range(3) for e in range(3) for p in range(20)}
    assert len(seeds) == 180 and all(0 <= s < 2**63 for s in seeds)
    assert item_seed(-1, 0, 0) == item_seed(-1, 0, 0)  # negative stream seeds work too


@pytest.mark.parametrize("kind", ["paired", "unpaired"])
def test_augmentation_is_reproducible_across_workers_and_resume(tmp_path, kind):
    if kind == "paired":
        write_paired(tmp_path, {"train": 6}, size=(32, 16))
        source = paired_folder(str(tmp_path), **SMALL)
    else:
        write_unpaired(tmp_path, {"trainA": 6, "trainB": 4}, size=(16, 16))
        source = unpaired_folder(str(tmp_path), **SMALL)
    straight, _ = batches(source, 8)  # 3 batches an epoch: crosses two epoch ends
    workers, _ = batches(source, 8, num_workers=2)
    head, first = batches(source, 4)  # stops mid-epoch
    tail, _ = batches(source, 4, state=first.state_dict())
    for other in (workers, head + tail):
        assert all(torch.equal(a[key], b[key]) for a, b in zip(straight, other) for key in ("A", "B"))
    # Another stream seed crops (and, unpaired, matches) differently.
    reseeded, _ = batches(source, 8, seed=4)
    assert not all(torch.equal(a["A"], b["A"]) for a, b in zip(straight, reseeded))


def test_fixed_batch_is_the_first_validation_pairs_resized(tmp_path):
    halves = write_paired(tmp_path, {"train": 5, "val": 3, "test": 4}, size=(32, 16))
    source = paired_folder(str(tmp_path), image_size=8, load_size=10)
    fixed = source.fixed_batch(2)
    assert set(fixed) == {"A", "B"} and fixed["A"].shape == (2, 3, 8, 8) and fixed["A"].dtype == torch.float32
    assert fixed["A"].min() >= -1 and fixed["A"].max() <= 1 and fixed["A"].device.type == "cpu"
    assert torch.equal(fixed["B"], rotated(fixed["A"]))  # no crop, no flip
    assert torch.equal(fixed["A"], source.fixed_batch(2)["A"])  # the same every time
    assert source.fixed_batch(10)["A"].shape[0] == 3  # val/ holds 3
    same_size = paired_folder(str(tmp_path), image_size=16, load_size=20)
    assert torch.equal(same_size.fixed_batch(3)["A"], to_unit_range(chw(halves["val"])))
    assert paired_folder(str(tmp_path), val_split="test", **SMALL).fixed_batch(10)["A"].shape[0] == 4
    sizes = [b["A"].shape[0] for b in same_size.validation_batches(2)]
    assert sizes == [2, 1]


def test_fixed_batch_falls_back_to_test_then_train(tmp_path):
    write_paired(tmp_path / "t", {"train": 5, "test": 4}, size=(32, 16))
    assert paired_folder(str(tmp_path / "t"), **SMALL).fixed_batch(10)["A"].shape[0] == 4
    write_paired(tmp_path / "n", {"train": 5}, size=(32, 16))
    assert paired_folder(str(tmp_path / "n"), **SMALL).fixed_batch(10)["A"].shape[0] == 5


def test_facades_reads_the_archive_layout_label_map_to_photo(tmp_path):
    halves = write_paired(tmp_path / "facades", {"train": 3, "val": 2, "test": 2}, size=(32, 16), ext="jpg")
    source = facades(root=str(tmp_path), **SMALL)
    assert source.spec.name == "facades" and source.spec.size == 3 and source.spec.pairing == "paired"
    # BtoA by default: the model's input is the right half (the label map).
    plain = facades(root=str(tmp_path), image_size=16, load_size=16, flip=False)
    photo, label = chw(halves["train"][0]).float(), chw(paired_target(halves["train"][0])).float()
    item = {k: v.float() for k, v in plain.dataset[0].items()}
    # JPEG changes the pixels: close to the right half, far from the other.
    assert (item["B"] - photo).abs().mean() < (item["B"] - label).abs().mean() / 2
    assert (item["A"] - label).abs().mean() < (item["A"] - photo).abs().mean() / 2
    with pytest.raises(UserError, match="download_pix2pix.py facades"):
        facades(root=str(tmp_path / "elsewhere"))


def test_paired_errors_are_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="does not exist.*path"):
        paired_folder(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="needs a path"):
        paired_folder("???")
    write_paired(tmp_path / "d", {"val": 2, "test": 1}, size=(32, 16))
    with pytest.raises(UserError, match=r"no .*/d/train/ \(it has test, val\)") as info:
        paired_folder(str(tmp_path / "d"))
    assert "\n" not in str(info.value)
    (tmp_path / "d" / "train").mkdir()
    with pytest.raises(UserError, match="no images in"):
        paired_folder(str(tmp_path / "d"))
    write_paired(tmp_path / "d", {"train": 2}, size=(32, 16))
    with pytest.raises(UserError, match="AtoB.*BtoA"):
        paired_folder(str(tmp_path / "d"), direction="AB")
    with pytest.raises(UserError, match="load_size=12 is smaller than image_size=16"):
        paired_folder(str(tmp_path / "d"), image_size=16, load_size=12)
    with pytest.raises(UserError, match="val_split='nope'.*it has test, train, val"):
        paired_folder(str(tmp_path / "d"), val_split="nope")


def test_an_odd_width_names_the_file(tmp_path):
    write_paired(tmp_path, {"train": 2}, size=(32, 16))
    write_paired(tmp_path / "bad", {"train": 1}, size=(33, 16))
    (tmp_path / "bad" / "train" / "0.png").rename(tmp_path / "train" / "odd.png")
    with pytest.raises(UserError, match=r"odd\.png is 33x16: A\|B images must have an even width"):
        paired_folder(str(tmp_path), **SMALL)


# --- CycleGAN: the unpaired layout -------------------------------------------------


def test_unpaired_epoch_covers_the_larger_domain(tmp_path):
    images = write_unpaired(tmp_path, {"trainA": 3, "trainB": 5, "testA": 2, "testB": 4}, size=(16, 16))
    source = unpaired_folder(str(tmp_path), image_size=16, load_size=16, flip=False)
    assert source.spec.pairing == "unpaired" and source.spec.size == 5 and len(source.dataset) == 5
    b_images = [chw(b) for b in images["trainB"]]
    for i in range(5):
        item = source.dataset[(i, 100 + i)]
        assert set(item) == {"A", "B"} and item["A"].dtype == torch.uint8
        assert torch.equal(item["A"], chw(images["trainA"][i % 3]))
        assert any(torch.equal(item["B"], b) for b in b_images)
    # B is drawn with the item's seed: reproducible, and different seeds meet different Bs.
    assert torch.equal(source.dataset[(0, 7)]["B"], source.dataset[(0, 7)]["B"])
    met = {next(k for k, b in enumerate(b_images) if torch.equal(source.dataset[(0, s)]["B"], b)) for s in range(30)}
    assert len(met) >= 3


def test_unpaired_crops_a_and_b_independently(tmp_path):
    write_unpaired(tmp_path, {"trainA": 1, "trainB": 1}, size=(16, 16))
    # Both domains hold the same image: identical outputs would mean shared crops.
    (tmp_path / "trainB" / "0.png").write_bytes((tmp_path / "trainA" / "0.png").read_bytes())
    source = unpaired_folder(str(tmp_path), **SMALL)
    items = [source.dataset[(0, s)] for s in range(20)]
    assert any(not torch.equal(it["A"], it["B"]) for it in items)


def test_unpaired_fixed_batch_uses_test_and_caps_n(tmp_path):
    images = write_unpaired(tmp_path, {"trainA": 3, "trainB": 5, "testA": 2, "testB": 4}, size=(16, 16))
    source = unpaired_folder(str(tmp_path), image_size=8, load_size=10)
    fixed = source.fixed_batch(6)
    assert fixed["A"].shape == (2, 3, 8, 8) and fixed["B"].shape == (2, 3, 8, 8)
    assert fixed["A"].min() >= -1 and fixed["A"].max() <= 1
    same = unpaired_folder(str(tmp_path), image_size=16, load_size=20).fixed_batch(1)
    assert torch.equal(same["B"][0], to_unit_range(chw(images["testB"][0])))
    write_unpaired(tmp_path / "no_test", {"trainA": 3, "trainB": 4}, size=(16, 16))
    assert unpaired_folder(str(tmp_path / "no_test"), **SMALL).fixed_batch(8)["A"].shape[0] == 3


def test_unpaired_errors_are_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        unpaired_folder(str(tmp_path / "nope"))
    write_unpaired(tmp_path, {"trainA": 2, "testA": 1}, size=(16, 16))
    with pytest.raises(UserError, match=r"no trainB/ \(it has testA, trainA\)"):
        unpaired_folder(str(tmp_path))
    (tmp_path / "trainB").mkdir()
    with pytest.raises(UserError, match="no images in .*trainB/"):
        unpaired_folder(str(tmp_path))


# --- configs -----------------------------------------------------------------------


@pytest.mark.parametrize("option", ["facades", "paired_folder", "unpaired_folder"])
def test_configs_compose_check_and_build(tmp_path, option):
    if option == "unpaired_folder":
        write_unpaired(tmp_path, {"trainA": 2, "trainB": 2}, size=(16, 16))
    else:
        write_paired(tmp_path / "facades" if option == "facades" else tmp_path, {"train": 2}, size=(32, 16))
    place = f"data.root={tmp_path}" if option == "facades" else f"data.path={tmp_path}"
    cfg = compose_config([f"data={option}", place, "data.image_size=16", "data.load_size=20"])
    check_config(cfg)
    assert cfg.data.batch_size == 1 and cfg.data.num_workers == 4
    source = instantiate(_without(cfg.data, LOADER_KEYS))
    assert source.spec.image_size == 16 and source.spec.pairing in ("paired", "unpaired")
    assert cfg.data.cache is False and source.dataset.cache is None
    cached = compose_config(
        [
            f"data={option}",
            place,
            "data.image_size=16",
            "data.load_size=20",
            "data.cache=true",
            f"data.cache_dir={tmp_path / 'cache'}",
        ]
    )
    check_config(cached)
    assert instantiate(_without(cached.data, LOADER_KEYS)).dataset.cache is not None
    assert list((tmp_path / "cache").glob("*.npy"))
    with pytest.raises(UserError, match="cache=true needs cache_dir"):
        instantiate(
            _without(compose_config([f"data={option}", place, "data.cache=true", "data.cache_dir="]).data, LOADER_KEYS)
        )


# --- scripts/download_pix2pix.py ---------------------------------------------------


def _png(seed: int, size=(32, 16)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def download(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".part") or p.name.startswith("."))


def test_download_installs_a_pix2pix_archive(tmp_path):
    archive = _tar_gz(
        tmp_path / "facades.tar.gz", {f"facades/{s}/{k}.png": _png(k) for s in ("train", "val") for k in range(2)}
    )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    root = tmp_path / "data"
    done = download("facades", "--root", str(root), "--url", archive.as_uri(), "--sha256", digest)
    assert done.returncode == 0, done.stderr
    assert "matches" in done.stdout
    assert sorted(p.name for p in (root / "facades").iterdir()) == ["train", "val"]
    assert leftovers(root) == []
    assert facades(root=str(root), **SMALL).spec.size == 2  # the loader reads what it installed
    # Without a known digest, the computed one is printed so it can be recorded.
    other = download("maps", "--root", str(tmp_path / "again"), "--url", archive.as_uri())
    assert other.returncode == 0 and digest in other.stdout and (tmp_path / "again" / "maps" / "train").is_dir()


def test_download_installs_a_cyclegan_zip(tmp_path):
    archive = tmp_path / "horse2zebra.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for sub in ("trainA", "trainB", "testA", "testB"):
            zf.writestr(f"horse2zebra/{sub}/0.png", _png(1, (16, 16)))
    root = tmp_path / "data"
    done = download("horse2zebra", "--kind", "cyclegan", "--root", str(root), "--url", archive.as_uri())
    assert done.returncode == 0, done.stderr
    assert unpaired_folder(str(root / "horse2zebra"), **SMALL).spec.size == 1
    assert leftovers(root) == []


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("download_pix2pix: error: ")
    return lines[0]


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    archive = _tar_gz(tmp_path / "facades.tar.gz", {"facades/train/0.png": _png(0)})
    root = tmp_path / "data"
    line = _one_error_line(download("facades", "--root", str(root), "--url", archive.as_uri(), "--sha256", "0" * 64))
    assert archive.as_uri() in line and "SHA-256" in line
    assert list(root.iterdir()) == []


def test_download_unreachable_url_is_one_line(tmp_path):
    root = tmp_path / "data"
    line = _one_error_line(download("facades", "--root", str(root), "--url", "http://127.0.0.1:9/x.tar.gz"))
    assert "http://127.0.0.1:9/x.tar.gz" in line and "--url file://" in line
    assert list(root.iterdir()) == []
    missing = _one_error_line(download("facades", "--root", str(root), "--url", (tmp_path / "none.tar.gz").as_uri()))
    assert "none.tar.gz" in missing and list(root.iterdir()) == []


def test_download_refuses_unsafe_archives_and_wrong_layouts(tmp_path):
    root = tmp_path / "data"
    evil = _tar_gz(tmp_path / "evil.tar.gz", {"facades/train/0.png": _png(0), "../escaped.png": _png(1)})
    assert "unsafe member" in _one_error_line(download("facades", "--root", str(root), "--url", evil.as_uri()))
    assert not (tmp_path / "escaped.png").exists() and list(root.iterdir()) == []
    flat = _tar_gz(tmp_path / "flat.tar.gz", {"facades/0.png": _png(0)})
    assert "layout" in _one_error_line(download("facades", "--root", str(root), "--url", flat.as_uri()))
    assert list(root.iterdir()) == []
    assert "--kind cyclegan" in _one_error_line(download("horse2zebra", "--root", str(root)))


def test_download_never_overwrites_an_existing_dataset(tmp_path):
    root = tmp_path / "data"
    (root / "facades").mkdir(parents=True)
    (root / "facades" / "mine.txt").write_text("keep")
    archive = _tar_gz(tmp_path / "facades.tar.gz", {"facades/train/0.png": _png(0)})
    done = download("facades", "--root", str(root), "--url", archive.as_uri())
    assert done.returncode == 0 and "already exists" in done.stdout
    assert [p.name for p in (root / "facades").iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in root.iterdir()) == ["facades"]


# --- data.cache=true: decoded once, the same items ------------------------------------


def test_vectorised_item_seeds_are_item_seed():
    from gantrain.data.loader import item_seeds

    positions = torch.arange(0, 5000, 7)
    for seed, epoch in ((0, 0), (3, 5), (-1, 2), (2**40, 10**6)):
        assert item_seeds(seed, epoch, positions).tolist() == [item_seed(seed, epoch, p) for p in positions.tolist()]


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_cached_pairs_are_bit_identical_to_decoded_ones(tmp_path, direction, monkeypatch):
    from gantrain.data import paired as paired_module

    write_paired(tmp_path / "d", {"train": 5, "val": 2}, size=(32, 16), ext="jpg")
    options = dict(direction=direction, image_size=16, load_size=23)  # 23: a bicubic resize, not a copy
    plain = paired_folder(str(tmp_path / "d"), **options)
    cached = paired_folder(str(tmp_path / "d"), **options, cache=True, cache_dir=str(tmp_path / "cache"))
    for key in [(k % 5, 1000 + k) for k in range(30)]:
        a, b = plain.dataset[key], cached.dataset[key]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
    straight, _ = batches(plain, 6, num_workers=2)
    from_cache, _ = batches(cached, 6, num_workers=2)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(straight, from_cache) for k in ("A", "B"))
    assert torch.equal(plain.fixed_batch(2)["A"], cached.fixed_batch(2)["A"])  # validation: uncached
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 2 and all(f.startswith("d-train_") for f in files)  # left and right, no temporaries
    # The other direction and later builds reuse the cache: no file is decoded again.
    monkeypatch.setattr(paired_module.AlignedPairs, "sides", lambda self, index: 1 / 0)
    other = paired_folder(
        str(tmp_path / "d"),
        direction="BtoA" if direction == "AtoB" else "AtoB",
        image_size=16,
        load_size=23,
        cache=True,
        cache_dir=str(tmp_path / "cache"),
    )
    assert torch.equal(other.dataset[(2, 9)]["A"], cached.dataset[(2, 9)]["B"])


def test_cached_unpaired_images_are_bit_identical_to_decoded_ones(tmp_path):
    import pickle

    write_unpaired(tmp_path / "h2z", {"trainA": 4, "trainB": 3}, size=(18, 14))
    plain = unpaired_folder(str(tmp_path / "h2z"), image_size=12, load_size=15)
    cached = unpaired_folder(
        str(tmp_path / "h2z"), image_size=12, load_size=15, cache=True, cache_dir=str(tmp_path / "cache")
    )
    for key in [(k % 4, 50 + k) for k in range(30)]:
        a, b = plain.dataset[key], cached.dataset[key]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
    straight, _ = batches(plain, 5)
    from_cache, _ = batches(cached, 5, num_workers=2)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(straight, from_cache) for k in ("A", "B"))
    names = sorted(p.name.split("_")[0] for p in (tmp_path / "cache").iterdir())
    assert names == ["h2z-trainA", "h2z-trainB"]
    # Worker processes get the cache as a file name, not as its bytes.
    mapped = cached.dataset.cache["A"]
    assert len(pickle.dumps(mapped)) < 300 < mapped[0].numel()
    assert torch.equal(pickle.loads(pickle.dumps(mapped))[3], mapped[3])
