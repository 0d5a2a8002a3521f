"""Folders of real-world junk: non-images, empty, truncated and corrupt files are left out
and counted (or stop the run at once with data.on_bad_file=fail), never a crash
mid-epoch; grey, palette, RGBA, CMYK and 16-bit images are converted properly."""

import logging
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import TINY, gantrain, train
from fixtures import write_paired, write_unpaired
from PIL import Image

from gantrain.data.folder import folder
from gantrain.data.paired import paired_folder
from gantrain.data.unpaired import unpaired_folder
from gantrain.errors import UserError


def corrupt_png_data(path) -> None:
    """Garble the compressed pixels of a PNG but keep every chunk's CRC right: the file
    passes PIL's structural ``verify`` and only fails when decoded (like a bad download
    that kept its headers)."""
    data = bytearray(path.read_bytes())
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            body = bytes(b ^ 0x5A for b in data[pos + 8 : pos + 8 + length])
            data[pos + 8 : pos + 8 + length] = body
            data[pos + 8 + length : pos + 12 + length] = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        pos += 12 + length
    path.write_bytes(bytes(data))


def junk_folder(root):
    """Five good images of five kinds, and five bad files."""
    root.mkdir(parents=True)
    Image.new("L", (20, 20), 100).save(root / "grey.png")
    Image.new("P", (20, 20), 3).save(root / "palette.png")
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # fully transparent black
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 20))  # opaque red left half
    rgba.save(root / "rgba.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(root / "cmyk.jpg")  # red in CMYK
    Image.fromarray(np.full((20, 20), 32896, dtype=np.uint16)).save(root / "deep16.png")  # 128 * 257
    (root / "notes.png").write_text("not an image at all")
    (root / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (20, 20), (0, 200, 0)).save(root / "truncated.jpg")
    (root / "truncated.jpg").write_bytes((root / "truncated.jpg").read_bytes()[:60])
    Image.new("RGB", (20, 20), (0, 0, 200)).save(root / "corrupt.png")
    corrupt_png_data(root / "corrupt.png")
    return root


def test_bad_files_are_skipped_and_counted_and_every_kind_is_converted(tmp_path, caplog):
    root = junk_folder(tmp_path / "junk")
    with caplog.at_level(logging.WARNING, logger="gantrain"):
        source = folder(str(root), image_size=20, channels=3)
    names = sorted(p.name for p in source.dataset.files)
    # corrupt.png passes the scan (its structure is whole) and is caught when decoded.
    assert names == ["cmyk.jpg", "corrupt.png", "deep16.png", "grey.png", "palette.png", "rgba.png"]
    assert "skipped 3 unreadable file(s) of 9" in caplog.text
    items = {p.name: source.dataset[k]["image"] for k, p in enumerate(source.dataset.files)}
    assert all(item.shape == (3, 20, 20) and item.dtype == torch.uint8 for item in items.values())
    assert items["grey.png"].unique().tolist() == [100]
    assert abs(int(items["deep16.png"].float().mean()) - 128) <= 1  # scaled, not clipped to white
    assert items["rgba.png"][:, :, 15].unique().tolist() == [255]  # transparent -> white, not black
    assert items["rgba.png"][:, 5, 5].tolist() == [255, 0, 0]
    red = items["cmyk.jpg"][:, 10, 10].tolist()
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    # The undecodable file is replaced by the next readable one, with a warning naming it.
    with caplog.at_level(logging.WARNING, logger="gantrain"):
        corrupt = source.dataset[names.index("corrupt.png")]["image"]
    assert torch.equal(corrupt, items["deep16.png"]) and "cannot decode" in caplog.text and "corrupt.png" in caplog.text


def test_grey_runs_read_every_kind_as_one_channel(tmp_path):
    source = folder(str(junk_folder(tmp_path / "junk")), image_size=16, channels=1)
    assert {tuple(source.dataset[k]["image"].shape) for k in range(len(source.dataset))} == {(1, 16, 16)}


def test_on_bad_file_fail_stops_at_the_first_bad_file_naming_it(tmp_path):
    root = junk_folder(tmp_path / "junk")
    with pytest.raises(UserError, match=r"cannot read .*(notes\.png|empty\.jpg|truncated\.jpg).*on_bad_file=skip"):
        folder(str(root), image_size=20, on_bad_file="fail")
    for bad in ("notes.png", "empty.jpg", "truncated.jpg"):
        (root / bad).unlink()
    source = folder(str(root), image_size=20, on_bad_file="fail")
    with pytest.raises(UserError, match=r"cannot decode .*corrupt\.png"):
        source.dataset[[p.name for p in source.dataset.files].index("corrupt.png")]
    with pytest.raises(UserError, match="on_bad_file='maybe'"):
        folder(str(root), on_bad_file="maybe")


def test_training_on_a_junk_folder_with_worker_processes_never_crashes(tmp_path):
    root = junk_folder(tmp_path / "junk")
    status = train(
        tmp_path / "run",
        [
            *TINY,
            "data=folder",
            f"data.path={root}",
            "data.image_size=16",
            "data.batch_size=4",
            "data.num_workers=2",
            "trainer.steps=6",
        ],
    )
    assert status == "finished"


def test_a_worker_hitting_a_bad_file_with_fail_is_one_line(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for k in range(4):
        Image.new("RGB", (16, 16), (60 * k, 0, 0)).save(root / f"{k}.png")
    corrupt_png_data(root / "2.png")
    result = gantrain(
        *TINY,
        "data=folder",
        f"data.path={root}",
        "data.image_size=16",
        "data.batch_size=4",
        "data.num_workers=1",
        "data.on_bad_file=fail",
        "trainer.steps=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("gantrain: error: cannot decode") and "2.png" in last, result.stderr
    assert last.endswith("or set data.on_bad_file=skip"), result.stderr  # the key, though a worker raised it


def test_paired_and_unpaired_folders_skip_bad_files_too(tmp_path, caplog):
    write_paired(tmp_path / "pairs", {"train": 3, "val": 1}, size=(32, 16))
    (tmp_path / "pairs" / "train" / "junk.png").write_text("no")
    with caplog.at_level(logging.WARNING, logger="gantrain"):
        source = paired_folder(str(tmp_path / "pairs"), image_size=16, load_size=16)
    assert source.spec.size == 3 and "skipped 1 unreadable" in caplog.text
    write_unpaired(tmp_path / "h2z", {"trainA": 2, "trainB": 2}, size=(16, 16))
    (tmp_path / "h2z" / "trainB" / "junk.jpg").write_bytes(b"\xff\xd8 truncated")
    source = unpaired_folder(str(tmp_path / "h2z"), image_size=16, load_size=16)
    assert source.spec.extras["size_b"] == 2
    (tmp_path / "h2z" / "trainA" / "0.png").write_text("no")
    (tmp_path / "h2z" / "trainA" / "1.png").write_text("no")
    with pytest.raises(UserError, match="no readable images in .*trainA"):
        unpaired_folder(str(tmp_path / "h2z"), image_size=16, load_size=16)


def test_an_empty_folder_is_one_line_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    result = gantrain(*TINY, "data=folder", f"data.path={tmp_path / 'empty'}", cwd=tmp_path)
    assert result.returncode == 2 and f"no images in {tmp_path / 'empty'}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "outputs").exists()
