"""The benchmark scripts stay runnable: their reference nets still match gantrain's; and
the GPU check runs on the CPU, where it says which parts need CUDA."""

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench import WORKLOADS, bf16_peak_tflops, flops_per_image, make_plain  # noqa: E402
from conftest import TINY, checkpoint  # noqa: E402
from quality_bench import assert_same_architecture, plain_nets  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_plain_reference_dcgan_has_gantrains_parameter_counts():
    for width in (8, 32, 64):
        G, D = plain_nets(64, width)
        assert_same_architecture(G, D, 64, width)  # raises if they drifted apart


def _flops_per_image(name: str, batch: int, **attrs) -> float:
    scale = 1.0 if WORKLOADS[name].image_size < 64 else 0.25  # the 28x28 workloads at their size
    loop = make_plain(WORKLOADS[name], torch.device("cpu"), batch, width=4, scale=scale)
    for key, value in attrs.items():
        setattr(loop, key, value)
    return flops_per_image(loop)


@pytest.mark.slow
def test_bench_flops_are_per_image_and_count_the_penalty_double_backward():
    for name in WORKLOADS:  # convolutions cost the same per image at any batch
        assert _flops_per_image(name, 2) == pytest.approx(_flops_per_image(name, 4), rel=1e-9)
    with_penalty = _flops_per_image("wgan_gp-64", 2)
    without = _flops_per_image("wgan_gp-64", 2, gp_weight=0.0)
    assert with_penalty > 1.3 * without


def test_bench_bf16_peaks_by_device_name():
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756
    assert bf16_peak_tflops("NVIDIA H200") == 989
    assert bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312
    assert bf16_peak_tflops("NVIDIA L4") == 121
    assert bf16_peak_tflops("NVIDIA L40S") is None  # not the L4
    assert bf16_peak_tflops("NVIDIA GeForce RTX 4090") == 165
    assert bf16_peak_tflops("Some Future GPU") is None


@pytest.mark.slow
def test_bench_runs_every_workload(capsys):
    import bench

    rows = bench.main(
        [
            "--device",
            "cpu",
            "--steps",
            "1",
            "--rounds",
            "1",
            "--batch-size",
            "2",
            "--pix2pix-batch-size",
            "2",
            "--width",
            "4",
            "--image-scale",
            "0.25",
            "--markdown",
            "--workloads",
            "dcgan-64",
            "wgan_gp-64",
            "pix2pix-256",
            "--override",
            "speed.compile=false",  # inductor's compilations would take the test's minutes
        ]
    )
    out = capsys.readouterr().out
    assert [row.workload for row in rows] == ["dcgan-16", "wgan_gp-16", "pix2pix-64"]
    for row in rows:
        assert row.plain > 0 and row.gantrain > 0 and row.gflop_per_image > 0
    assert "| workload | device | batch | GFLOP/img |" in out and "| pix2pix-64 | cpu | 2 |" in out
    if not torch.cuda.is_available():
        assert "no CUDA GPU here: GPU rows not measured" in out
    small = ["--device", "cpu", "--steps", "1", "--rounds", "1", "--batch-size", "2", "--width", "4"]
    rows = bench.main([*small, "--workloads", "dcgan-28", "gan-28", "--eager-too", "--override", "speed.compile=false"])
    assert [row.workload for row in rows] == ["dcgan-28", "gan-28"]
    assert all(row.plain > 0 and row.gantrain > 0 and row.eager > 0 for row in rows)


def test_cache_bench_runs(monkeypatch, capsys):
    import cache_bench

    monkeypatch.setattr(sys, "argv", ["cache_bench.py", "--images", "130", "--workers", "0", "--size", "16"])
    cache_bench.main()
    out = capsys.readouterr().out
    assert "from the cache (memory-mapped)" in out and "DataLoader, 0 workers" in out


def test_sync_check_reports_the_synchronising_calls_of_checked_steps_only(monkeypatch, tmp_path):
    """The CUDA check's plumbing on the CPU: a stand-in for torch's sync debug mode warns
    as torch does, from inside D's loss, whenever the mode is "warn"."""
    import warnings

    import sync_check

    from gantrain.models.gan import GAN

    mode = ["default"]
    d_loss = GAN.d_loss

    def synchronising_d_loss(self, batch):
        if mode[0] == "warn":
            warnings.warn("called a synchronizing CUDA operation", stacklevel=2)
        return d_loss(self, batch)

    monkeypatch.setattr(GAN, "d_loss", synchronising_d_loss)
    sites = sync_check.check_workload(
        "dcgan-64",
        batch_size=2,
        warmup=2,
        steps=3,
        overrides=["model.generator.width=4", "model.discriminator.width=4", "data.image_size=16"],
        data_root=tmp_path,
        device="cpu",
        set_mode=lambda m: mode.__setitem__(0, m),
    )
    assert mode == ["default"]
    assert list(sites.values()) == [3]  # the checked steps, not the warm-up ones
    assert "synchronising_d_loss" in next(iter(sites)) and "gantrain/engine/loop.py" in next(iter(sites))


def test_sync_check_refuses_the_cpu_with_one_line(capsys):
    import sync_check

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert sync_check.main(["--steps", "1"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_bench_reports_na_when_flops_cannot_be_counted(monkeypatch, capsys):
    import bench
    from torch.utils import flop_counter

    class Broken(flop_counter.FlopCounterMode):
        def __enter__(self):
            raise AttributeError("no mod_tracker in this torch")

    monkeypatch.setattr(flop_counter, "FlopCounterMode", Broken)
    loop = make_plain(WORKLOADS["dcgan-64"], torch.device("cpu"), batch_size=2, width=4, scale=0.25)
    assert math.isnan(flops_per_image(loop))
    row = bench.Row("dcgan-16", "cuda", "NVIDIA H100 80GB HBM3", 2, math.nan, 10.0, 20.0, 2.0, [])
    # Columns: ..., speed-up, gantrain eager (not timed: n/a), plain TFLOP/s, gantrain TFLOP/s, peak.
    assert row.cells()[3] == "n/a" and row.cells()[7] == "n/a"
    assert row.cells()[8] == "n/a" and row.cells()[10] == "n/a / n/a"
    assert "FLOPs not counted" in capsys.readouterr().out


GPU_CHECK_CUDA_ONLY = ["device-tests", "sync-check", "torchrun-nccl", "bench-64", "bench-512"]
GPU_CHECK_ON_THE_CPU = [
    "train-dcgan",
    "train-wgan_gp",
    "train-cgan",
    "train-pix2pix",
    "train-cyclegan",
    "resume",
    "eval-generate",
]


@pytest.mark.slow
def test_gpu_check_without_cuda_runs_the_rest_at_toy_size_and_reports_every_part(tmp_path):
    """scripts/gpu_check.sh with CUDA hidden: one line per CUDA-only part, the others run
    (a few steps of tiny nets) and pass, resume is bit-exact, the report has every part
    with its log, and the exit status is 0."""
    out = tmp_path / "report"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh"), str(out)], capture_output=True, text=True, timeout=900, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    parts = {part["name"]: part for part in report["parts"]}
    assert {name: part["status"] for name, part in parts.items()} == {
        **{name: "skip" for name in GPU_CHECK_CUDA_ONLY},
        **{name: "pass" for name in GPU_CHECK_ON_THE_CPU},
    }
    lines = result.stdout.splitlines()
    for name, part in parts.items():
        assert (out / part["log"]).is_file(), name
        said = [line for line in lines if f" {name}: " in line]
        assert len(said) == 1, (name, said)
        if name in GPU_CHECK_CUDA_ONLY:
            assert part["summary"].startswith("skipped: no CUDA") and "skipped: no CUDA" in said[0]
    for family in ("dcgan", "wgan_gp", "cgan", "pix2pix", "cyclegan"):
        details = parts[f"train-{family}"]["details"]
        # On the CPU, speed=auto's CPU choice for conv nets; 4 steps are too few to compile.
        assert details["steps"] == 4 and details["fast_path"] == "channels_last, fused_optim"
        assert not details["compile_fell_back"]
        assert (out / "samples" / f"{family}.png").is_file()
    assert parts["resume"]["details"]["max_abs_diff"] == 0.0 and "bit-exact" in parts["resume"]["summary"]
    assert parts["eval-generate"]["details"]["eval"]["metrics"]["classifier_fid"] >= 0
    assert (out / "samples" / "generate-dcgan.png").is_file()
    assert report["environment"]["quick"] is True and report["counts"]["fail"] == 0
    markdown = (out / "report.md").read_text()
    for name, part in parts.items():
        assert f"| {name} | {part['status']} |" in markdown


def test_gpu_check_resume_tolerance():
    from gpu_check import resume_verdict

    assert resume_verdict(0.0, None, exact=True) == (True, "bit-exact")
    assert not resume_verdict(1e-9, None, exact=True)[0]  # the CPU resumes bit-exactly
    assert not resume_verdict(1e-6, 0.0, exact=False)[0]  # reruns are exact, the resumed run is not
    assert resume_verdict(5e-3, 1e-3, exact=False)[0]
    assert not resume_verdict(2e-2, 1e-3, exact=False)[0]


@pytest.mark.slow
def test_gpu_check_world_of_one_takes_gantrains_data_parallel_path(tmp_path):
    """The torchrun part on one GPU, here on the CPU (gloo) with torchrun's environment
    for one process: gantrain's data-parallel code runs, and its all-reduces are counted."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "PYTHONSAFEPATH": "1",
    }
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "gpu_check.py"),
            "--world-of-one",
            *TINY,
            "trainer.steps=2",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^gpu_check world-of-one: [1-9]\d* gradient all-reduce\(s\) over gloo$", result.stdout, re.M)
    assert checkpoint(run_dir)["step"] == 2
