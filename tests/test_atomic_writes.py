"""Everything a run writes is atomic: a write that fails half way (a kill, a full disk)
leaves the old file as it was and no temporary behind. Sample grids, evaluation reports,
checkpoints, report tables and the tools' outputs all go through ``atomic.py``."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision.utils

import gantrain.atomic
import gantrain.engine.logger
import gantrain.tools.run
from gantrain.atomic import atomic_write
from gantrain.engine.checkpoint import remove_stale_temporaries, save_checkpoint, write_json
from gantrain.engine.logger import RunLogger
from gantrain.errors import UserError
from gantrain.report import write_report
from gantrain.tools.run import ToolOutput


class Cut(Exception):
    """The write stopped half way."""


def _half_then_fail(write):
    """``write`` (a writer taking a file as its second argument) that stops half way."""

    def cut(value, f, *args, **kwargs):
        write(value, f, *args, **kwargs)
        f.seek(0, 2)
        size = f.tell()
        f.truncate(size // 2)
        raise Cut

    return cut


def _temporaries(folder: Path) -> list[Path]:
    return list(folder.glob(".*.tmp"))


def test_atomic_write_cut_half_way_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def half(f):
        f.write(b"new, half of it")
        raise Cut

    with pytest.raises(Cut):
        atomic_write(path, half)
    assert path.read_bytes() == b"old" and not _temporaries(tmp_path)


def test_a_sample_grid_cut_half_way_keeps_the_old_grid(tmp_path, monkeypatch):
    logger = RunLogger(tmp_path)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    path = logger.images("samples", images, 10, nrow=2)
    old = path.read_bytes()
    # The logger imports save_image when it writes a grid (not at import): patched where it comes from.
    monkeypatch.setattr(torchvision.utils, "save_image", _half_then_fail(torchvision.utils.save_image))
    with pytest.raises(Cut):
        logger.images("samples", -images, 10, nrow=2)
    logger.close()
    assert path.read_bytes() == old and not _temporaries(path.parent)


def _fill_disk(monkeypatch) -> None:
    """From now on every atomic write fails at its flush to disk, after all its bytes went
    to the temporary."""

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gantrain.atomic.os, "fsync", no_space)


def test_reports_and_checkpoints_survive_a_failed_write(tmp_path, monkeypatch):
    report, state = tmp_path / "eval" / "step_00000010.json", tmp_path / "checkpoints" / "last.pt"
    write_json(report, {"metrics": {"fid": 1.0}})
    save_checkpoint({"step": 1}, state)
    csv_path, md_path = write_report(tmp_path, ["run", "fid"], [["a", "1.0"]])
    before = {p: p.read_bytes() for p in (report, state, csv_path, md_path)}
    _fill_disk(monkeypatch)
    with pytest.raises(OSError):
        write_json(report, {"metrics": {"fid": 2.0}})
    with pytest.raises(UserError, match="previous checkpoint there is intact"):
        save_checkpoint({"step": 2}, state)
    with pytest.raises(OSError):
        write_report(tmp_path, ["run", "fid"], [["a", "2.0"], ["b", "3.0"]])
    assert {p: p.read_bytes() for p in before} == before
    assert not [p for folder in (tmp_path, report.parent, state.parent) for p in _temporaries(folder)]


def test_tool_outputs_are_written_atomically(tmp_path, monkeypatch):
    output = ToolOutput(SimpleNamespace(run_dir=tmp_path, step=0, exported=False), "sample", "out")
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    paths = [output.grid("grid", images, 2), *output.images(images, ["a", "b"])]
    paths += [output.table("scores", [{"k": 1}]), output.tensor("z", torch.zeros(3))]
    before = {p: p.read_bytes() for p in paths}
    monkeypatch.setattr(torchvision.utils, "save_image", _half_then_fail(torchvision.utils.save_image))
    monkeypatch.setattr(torch, "save", _half_then_fail(torch.save))
    with pytest.raises(Cut):
        output.grid("grid", -images, 2)
    with pytest.raises(Cut):
        output.images(-images, ["a", "b"])
    with pytest.raises(Cut):
        output.tensor("z", torch.ones(3))
    _fill_disk(monkeypatch)
    with pytest.raises(OSError):
        output.table("scores", [{"k": 2}])
    output.close()
    assert {p: p.read_bytes() for p in before} == before and not _temporaries(output.path)


def test_temporaries_of_a_killed_run_are_removed_when_it_restarts(tmp_path):
    left = [tmp_path / "checkpoints" / ".last.pt.x1.tmp", tmp_path / "samples" / ".samples_00000010.png.x2.tmp"]
    left.append(tmp_path / "eval" / ".best.json.x3.tmp")
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(left)
    assert not any(path.exists() for path in left)
