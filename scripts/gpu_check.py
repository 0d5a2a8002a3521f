"""gantrain's GPU path in one prepared check: parts, each with its own time limit, one report.

Run it through ``scripts/gpu_check.sh [OUT_DIR]`` (default ``./gpu_report/``), which first
installs the wheels carried in ``.whl`` when gantrain is not importable (the GPU machine
of ``../shared/gpu/README.md``). The parts:

* ``device-tests``: the tests marked ``device`` (``pytest -m device``) with
  ``GANTRAIN_TEST_DEVICE=cuda``: the same tests CI runs on the CPU, here on the GPU.
* ``sync-check``: ``scripts/sync_check.py``, no host synchronisation inside a step.
* ``train-<family>``: ``gantrain`` from the command line, a few hundred steps each of
  DCGAN, WGAN-GP, cGAN, pix2pix and CycleGAN with the default fast path (``speed=auto``),
  saying whether ``torch.compile`` fell back to eager.
* ``resume``: N steps straight against N/2 steps plus ``resume=RUN`` to N, final weights
  compared (see ``resume_verdict`` for the tolerance).
* ``eval-generate``: ``gantrain-eval`` and ``gantrain-generate`` on the DCGAN run.
* ``torchrun-nccl``: gantrain under ``torchrun`` with NCCL (see ``torchrun_nccl``).
* ``bench-64``, ``bench-512``: ``scripts/bench.py`` at batch 64, then 512, with the time left.

Every part reports pass, fail or skip and its seconds; a failing part does not stop the
others. The parts before the benchmark run side by side (the GPU has room, and time is
short), then the benchmark runs alone. Without CUDA, the CUDA-only parts say so in one
line each, the rest run at toy size (``--quick``: a few steps of tiny nets, about a
minute on two cores), and the exit status is 0 when nothing failed.

Writes ``OUT_DIR/report.md``, ``OUT_DIR/report.json``, ``OUT_DIR/logs/`` (each part's
log, and the full output of each command it ran) and ``OUT_DIR/samples/`` (the last
sample grid of each training run). The runs themselves (checkpoints of hundreds of MB)
go to a temporary folder, removed at the end unless ``--keep-runs``.

    bash scripts/gpu_check.sh /tmp/report                 # everything, 8 minutes at most
    bash scripts/gpu_check.sh /tmp/report --quick         # a toy-size pass (the default without CUDA)
    bash scripts/gpu_check.sh /tmp/report --parts resume bench-64
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
FALLBACK = "torch.compile failed"  # the loop's warning when it falls back to eager
BENCH_WORKLOADS = ("dcgan-64", "wgan_gp-64", "pix2pix-256")
FAMILIES = ("dcgan", "wgan_gp", "cgan", "pix2pix", "cyclegan")
NO_CUDA = "skipped: no CUDA"


@dataclass
class Part:
    name: str
    title: str
    run: Callable[[Check, Part], tuple[str, str]]
    cuda_only: str | None = None  # why the part is CUDA-only: shown after NO_CUDA
    after: tuple[str, ...] = ()  # parts whose results it needs
    limit: float = 240.0  # seconds on a GPU
    quick_limit: float = 120.0
    late: bool = False  # runs alone after the others (the benchmark)
    reserve: float = 0.0  # a late part ends this long before the budget, leaving it to the next
    status: str = "pending"
    summary: str = ""
    seconds: float = 0.0
    details: dict = field(default_factory=dict)
    deadline: float = math.inf

    @property
    def log(self) -> str:
        return f"logs/{self.name}.log"


@dataclass
class Result:
    returncode: int | None  # None: killed at its time limit
    output: str
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self) -> str:
        if self.returncode is None:
            return f"timed out after {self.seconds:.0f} s"
        return f"exit status {self.returncode}"


class Check:
    def __init__(self, args: argparse.Namespace, t0: float) -> None:
        self.out = Path(args.out_dir).absolute()
        self.logs, self.samples = self.out / "logs", self.out / "samples"
        self.t0, self.budget = t0, args.budget
        self.cuda, self.gpus, self.gpu_name = probe_cuda()
        self.quick = args.quick or not self.cuda
        self.keep_runs = args.keep_runs
        self.work = Path(tempfile.mkdtemp(prefix="gantrain-gpu-check-"))
        self.device = "cuda" if self.cuda else "cpu"
        self.python = sys.executable
        self.env = {
            **os.environ,
            "PYTHONSAFEPATH": "1",
            "GANTRAIN_CACHE": str(self.work / "cache"),
            "PYTHONUNBUFFERED": "1",
        }
        self.parts: dict[str, Part] = {}
        self.futures: dict[str, Future] = {}
        self.lock = threading.RLock()  # (also taken by the SIGTERM handler)
        self.children: set[subprocess.Popen] = set()
        self.stopping = False
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.revision = git_revision()

    # -- time ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self, part: Part) -> float:
        return part.deadline - time.time()

    # -- commands -----------------------------------------------------------------------

    def note(self, part: Part, text: str) -> None:
        with open(self.out / part.log, "a") as log:
            log.write(text.rstrip("\n") + "\n")

    def run(
        self,
        part: Part,
        label: str,
        cmd: list[str],
        limit: float | None = None,
        cwd: Path | None = None,
        env: dict | None = None,
    ) -> Result:
        """``cmd`` with its output in ``logs/<part>.<label>.log``, killed (its whole process
        group) at ``limit`` seconds or the part's deadline, whichever comes first."""
        timeout = min(limit or math.inf, self.left(part))
        log_path = self.logs / f"{part.name}.{label}.log"
        shown = " ".join(cmd if cmd[:2] != [self.python, "-c"] else [cmd[0], "-c", "<stub>", *cmd[3:]])
        self.note(part, f"$ {shown}\n  (output: {log_path.name}; limit {timeout:.0f} s)")
        start = time.time()
        if timeout <= 1 or self.stopping:
            log_path.write_text("not started: no time left\n")
            self.note(part, "  not started: no time left")
            return Result(None, "", 0.0, log_path)
        with open(log_path, "w") as log:
            log.write(f"$ {shown}\n")
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.work,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )
            with self.lock:
                self.children.add(proc)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                code = None
            finally:
                with self.lock:
                    self.children.discard(proc)
        seconds = time.time() - start
        output = log_path.read_text(errors="replace")
        result = Result(code, output, seconds, log_path)
        self.note(part, f"  -> {'ok' if result.ok else result.why()} in {seconds:.1f} s")
        return result

    def run_all(self, part: Part, commands: dict[str, list[str]], limit: float | None = None) -> dict[str, Result]:
        """Several commands at once (each its own log)."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            futures = {label: pool.submit(self.run, part, label, cmd, limit) for label, cmd in commands.items()}
            return {label: future.result() for label, future in futures.items()}

    def gantrain(self, part: Part, label: str, overrides: list[str], limit: float | None = None) -> Result:
        return self.run(part, label, [self.python, "-m", "gantrain.cli", *overrides], limit)

    def script(self, name: str, *args: str) -> list[str]:
        # scripts/_checkout.py has them import the installed gantrain (the GPU machine's
        # /tmp/site), not the checkout's folder, whose gantrain/ has no conf/ there.
        return [self.python, str(SCRIPTS / name), *args]

    def stop_children(self) -> None:
        self.stopping = True
        with self.lock:
            children = list(self.children)
        for proc in children:
            kill_group(proc)

    # -- the parts ----------------------------------------------------------------------

    def add(self, part: Part) -> None:
        self.parts[part.name] = part

    def execute(self, part: Part) -> None:
        waiting = [self.futures[name] for name in part.after if name in self.futures]
        for future in waiting:
            future.result()
        limit = part.quick_limit if self.quick else part.limit
        part.deadline = min(time.time() + limit, part.deadline)
        start = time.time()
        self.note(part, f"# {part.name}: {part.title}")
        try:
            failed = [name for name in part.after if name in self.parts and self.parts[name].status != "pass"]
            if part.cuda_only is not None and not self.cuda:
                status, summary = "skip", f"{NO_CUDA} ({part.cuda_only})" if part.cuda_only else NO_CUDA
            elif failed:
                status, summary = "skip", f"skipped: {', '.join(failed)} did not pass"
            elif self.left(part) < 5 or self.stopping:
                status, summary = "skip", "skipped: out of time"
            else:
                status, summary = part.run(self, part)
        except Exception:  # a bug in this script fails the part, not the check
            self.note(part, traceback.format_exc())
            status, summary = "fail", "the check itself raised: " + traceback.format_exc().strip().splitlines()[-1]
        part.status, part.summary, part.seconds = status, summary, time.time() - start
        self.note(part, f"=> {status} in {part.seconds:.1f} s: {summary}")
        with self.lock:
            print(f"[{self.elapsed():5.0f} s] {part.name}: {status} ({part.seconds:.1f} s) {summary}", flush=True)
            self.write_report()

    def run_parts(self, workers: int, phase_end: float, names: set[str] | None) -> None:
        chosen = [p for p in self.parts.values() if names is None or p.name in names]
        early, late = [p for p in chosen if not p.late], [p for p in chosen if p.late]
        for k, part in enumerate(early):
            assert all(name not in self.parts or name in [p.name for p in early[:k]] for name in part.after), part
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for part in early:  # a part waits only on parts submitted before it: no deadlock
                part.deadline = phase_end
                self.futures[part.name] = pool.submit(self.execute, part)
            for future in list(self.futures.values()):
                future.result()
        for part in late:
            part.deadline = self.t0 + self.budget - 10 - (0 if self.quick else part.reserve)
            self.execute(part)

    # -- the report ---------------------------------------------------------------------

    def write_report(self) -> None:
        parts = list(self.parts.values())
        counts = {s: sum(p.status == s for p in parts) for s in ("pass", "fail", "skip", "pending")}
        environment = {
            "python": platform.python_version(),
            "torch": torch_version(),
            "host": platform.node(),
            "device": self.gpu_name if self.cuda else "cpu (no CUDA)",
            "gpus": self.gpus,
            "git revision": self.revision,
            "quick": self.quick,
            "budget_s": self.budget,
        }
        report = {
            "gpu_check": 1,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(self.elapsed(), 1),
            "environment": environment,
            "counts": counts,
            "parts": [
                {
                    "name": p.name,
                    "title": p.title,
                    "status": p.status,
                    "seconds": round(p.seconds, 1),
                    "summary": p.summary,
                    "log": p.log,
                    "details": p.details,
                }
                for p in parts
            ],
        }
        write_text(self.out / "report.json", json.dumps(report, indent=2) + "\n")
        lines = [
            "# gantrain GPU check",
            "",
            f"{self.started:%Y-%m-%d %H:%M} UTC; {environment['device']}"
            + (f" ({self.gpus} GPU(s))" if self.cuda else "")
            + f"; torch {environment['torch']}; Python {environment['python']}; "
            f"git {environment['git revision']}; {'quick (toy sizes)' if self.quick else 'full size'}",
            "",
            f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
            + (f", {counts['pending']} not run yet" if counts["pending"] else "")
            + f"; {self.elapsed():.0f} s of a {self.budget:.0f} s budget.",
            "",
            "| part | status | seconds | result |",
            "|---|---|---:|---|",
        ]
        for p in parts:
            lines.append(f"| {p.name} | {p.status} | {p.seconds:.1f} | {p.summary.replace('|', '/')} |")
        lines += [
            "",
            "Each part's log: `logs/<part>.log` (the commands it ran, their exit statuses), "
            "with each command's full output in `logs/<part>.<label>.log`.",
        ]
        for p in parts:
            if p.details.get("markdown"):
                lines += ["", f"## {p.name}: {p.title}", "", p.details["markdown"]]
        write_text(self.out / "report.md", "\n".join(lines) + "\n")


# -- helpers --------------------------------------------------------------------------------


def kill_group(proc: subprocess.Popen) -> None:
    """End ``proc`` and every process it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def probe_cuda() -> tuple[bool, int, str]:
    import torch

    if not torch.cuda.is_available():
        return False, 0, ""
    return True, torch.cuda.device_count(), torch.cuda.get_device_name(0)


def torch_version() -> str:
    import torch

    return torch.__version__


def git_revision() -> str:
    try:
        return (
            subprocess.run(
                ["git", "describe", "--always", "--dirty", "--abbrev=12"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def last_line(text: str, pattern: str) -> str:
    lines = [line.strip() for line in text.splitlines() if re.search(pattern, line)]
    return lines[-1] if lines else ""


def write_images(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{k:04d}.png")


def load_state(run_dir: Path) -> dict:
    import torch

    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def max_abs_diff(a: dict, b: dict) -> float:
    """The largest absolute difference between the floating-point tensors of two state dicts."""
    worst = 0.0
    for key, value in a.items():
        other = b[key]
        if value.is_floating_point():
            worst = max(worst, (value.double() - other.double()).abs().max().item() if value.numel() else 0.0)
        elif not bool((value == other).all()):
            return math.inf
    return worst


# -- the parts --------------------------------------------------------------------------


def device_tests(check: Check, part: Part) -> tuple[str, str]:
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        return "fail", (
            "pytest is not installed here: put its wheels (pytest, pluggy, iniconfig, pygments, "
            "packaging) into .whl beside gantrain's (README, 'The GPU check')"
        )
    result = check.run(
        part,
        "pytest",
        [check.python, "-m", "pytest", "-m", "device", "-q", "-p", "no:cacheprovider", str(REPO / "tests")],
        cwd=REPO,
        env={"GANTRAIN_TEST_DEVICE": check.device},
    )
    summary = last_line(result.output, r"\d+ (passed|failed|error|skipped|deselected)") or result.why()
    failed = [line.split()[1] for line in result.output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if failed:
        summary += "; " + ", ".join(name.split("::", 1)[-1] for name in failed[:6]) + (", ..." if failed[6:] else "")
    return ("pass" if result.ok else "fail"), f"pytest -m device on {check.device}: {summary}"


def sync_check(check: Check, part: Part) -> tuple[str, str]:
    args = ["--batch-size", "64"]
    if check.quick:
        args += ["--workloads", "dcgan-64", "--warmup", "5", "--steps", "5"]
    result = check.run(part, "sync_check", check.script("sync_check.py", *args))
    found = [line.strip() for line in result.output.splitlines() if "synchronising call(s)" in line]
    if result.ok:
        return "pass", "; ".join(found)
    if result.returncode == 1:
        return "fail", "; ".join(found) + " (the call sites are in the log)"
    said = "; ".join(found) or last_line(result.output, r"\S")[:300]
    return "fail", f"{result.why()}: {said}"


def family_overrides(check: Check, family: str) -> tuple[list[str], int]:
    """The command line of each family's run, and its steps."""
    data = check.work / "data"
    if check.quick:
        steps = 4
        common = [
            "model.generator.width=8",
            "model.discriminator.width=8",
            f"trainer.steps={steps}",
            "trainer.log_every=2",
            "trainer.sample_every=2",
            "trainer.checkpoint_every=2",
        ]
        small = ["data.batch_size=8"]
        translation = ["data.image_size=32", "data.load_size=36", "data.num_workers=0"]
    else:
        steps = 200 if family in ("wgan_gp", "cyclegan") else 300
        common = [
            f"trainer.steps={steps}",
            "trainer.log_every=50",
            f"trainer.sample_every={steps // 2}",
            f"trainer.checkpoint_every={steps // 2}",
        ]
        small = []
        translation = ["data.image_size=64", "data.load_size=72", "data.num_workers=4"]
    common += ["trainer.progress=false", f"device={check.device}"]
    if family == "dcgan":
        # On the CPU: random 28x28 grey digits-to-be with 10 classes, so that gantrain-eval's
        # classifier judge trains on 64 images in seconds; on the GPU the bundled MNIST sample.
        own = (
            ["data=synthetic", "data.channels=1", "data.image_size=28", "data.num_classes=10", "data.size=64"]
            if check.quick
            else []
        )
        return [*own, *small, *common], steps
    if family == "wgan_gp":
        return ["experiment=wgan_gp_mnist", "data=mnist_sample", *small, *common], steps
    if family == "cgan":
        return ["experiment=cgan_mnist", "data=mnist_sample", *small, *common], steps
    if family == "pix2pix":
        return [
            "experiment=pix2pix_facades",
            "data=paired_folder",
            f"data.path={data / 'paired'}",
            *translation,
            *common,
            f"trainer.lr_decay_start={steps // 2}",
        ], steps
    return [
        "experiment=cyclegan_horse2zebra",
        f"data.path={data / 'unpaired'}",
        *translation,
        *common,
        f"trainer.lr_decay_start={steps // 2}",
    ], steps


def write_data(check: Check) -> None:
    """pix2pix's aligned layout (A|B side by side) and CycleGAN's unpaired one, random pixels."""
    side = 36 if check.quick else 72
    count = 8 if check.quick else 64
    paired = check.work / "data" / "paired"
    write_images(paired / "train", count, 2 * side, side, seed=0)
    write_images(paired / "val", 8, 2 * side, side, seed=1)
    unpaired = check.work / "data" / "unpaired"
    for k, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(unpaired / sub, count if sub.startswith("train") else 4, side, side, seed=2 + k)


def train_family(family: str) -> Callable[[Check, Part], tuple[str, str]]:
    def run(check: Check, part: Part) -> tuple[str, str]:
        overrides, steps = family_overrides(check, family)
        run_dir = check.work / "runs" / family
        result = check.gantrain(part, "train", [*overrides, f"hydra.run.dir={run_dir}"])
        part.details["run_dir"] = str(run_dir)
        fell_back = FALLBACK in result.output
        part.details["compile_fell_back"] = fell_back
        if not result.ok:
            error = last_line(result.output, r"error|Error|Exception") or result.why()
            return "fail", f"{result.why()}: {error[:300]}"
        state = load_state(run_dir)
        fast = state["env"].get("fast path", "?")
        part.details.update(steps=state["step"], fast_path=fast)
        if state["step"] != steps:
            return "fail", f"stopped at step {state['step']} of {steps}"
        finite = all(bool(v.isfinite().all()) for v in state["model"].values() if v.is_floating_point())
        grids = sorted((run_dir / "samples").glob("*.png"))
        if grids:
            check.samples.mkdir(exist_ok=True)
            shutil.copy(grids[-1], check.samples / f"{family}.png")
        compiled = (
            "compile FELL BACK to eager (the warning is in the log)"
            if fell_back
            else "compile ok"
            if "compile" in fast
            else "no compile"
        )
        verdict = "pass" if finite else "fail"
        return verdict, (
            f"{steps} steps in {result.seconds:.0f} s; fast path: {fast}; {compiled}"
            + ("" if finite else "; NON-FINITE weights")
        )

    return run


RESUME_FACTOR = 10.0  # on GPUs: resumed-vs-straight may differ at most this many times rerun-vs-straight


def resume_verdict(resumed: float, rerun: float | None, exact: bool) -> tuple[bool, str]:
    """The tolerance for a resumed run's final weights against an uninterrupted run's.

    Bit-exact passes. On the CPU (``exact``) nothing else does: gantrain resumes
    bit-identically there. On a GPU, cuDNN's autotuning and atomics make two uninterrupted
    runs differ a little too, and GAN training amplifies every difference, so the resumed
    run passes when it differs from the straight one at most ``RESUME_FACTOR`` times as
    much as a second straight run (``rerun``) does, and only bit-exactly when the reruns
    are exact. (A quick GPU pass has no second run: it reports the difference and passes.)"""
    if resumed == 0.0:
        return True, "bit-exact"
    if exact:
        return False, f"max abs diff {resumed:.3g}, where the CPU resumes bit-exactly"
    if rerun is None:
        return True, f"max abs diff {resumed:.3g} (quick: no second straight run to compare with)"
    if rerun == 0.0:
        return False, f"max abs diff {resumed:.3g}, while two straight runs are bit-exact"
    ok = resumed <= RESUME_FACTOR * rerun
    return ok, (
        f"max abs diff {resumed:.3g} (two straight runs differ by {rerun:.3g}; tolerance "
        f"{RESUME_FACTOR:g}x that: {'within' if ok else 'BEYOND'})"
    )


def resume(check: Check, part: Part) -> tuple[str, str]:
    """On a GPU: DCGAN for 40 steps twice (the second run measures the kernels' own
    run-to-run difference), and for 20 steps then resumed to 40. In quick mode the
    DCGAN run of ``train-dcgan`` is the straight run (fewer processes on the CPU)."""
    base, family_steps = family_overrides(check, "dcgan")
    runs = check.work / "runs"
    halved, rerun = runs / "resume-cut", runs / "resume-straight-again"
    commands = {}
    if check.quick:
        steps, straight = family_steps, runs / "dcgan"
    else:
        steps, straight = 40, runs / "resume-straight"
        base = [
            o
            for o in base
            if not o.startswith(
                ("trainer.steps=", "trainer.checkpoint_every=", "trainer.log_every=", "trainer.sample_every=")
            )
        ]
        base += ["trainer.checkpoint_every=100000", f"trainer.log_every={steps // 2}", f"trainer.sample_every={steps}"]
        commands["straight"] = [*base, f"trainer.steps={steps}", f"hydra.run.dir={straight}"]
        # The GPU's own run-to-run difference: the yardstick for the resumed run.
        commands["straight-again"] = [*base, f"trainer.steps={steps}", f"hydra.run.dir={rerun}"]
    cut = steps // 2
    commands["cut"] = [*base, f"trainer.steps={cut}", f"hydra.run.dir={halved}"]
    results = check.run_all(
        part, {label: [check.python, "-m", "gantrain.cli", *args] for label, args in commands.items()}
    )
    bad = [f"{label}: {r.why()}" for label, r in results.items() if not r.ok]
    if bad:
        return "fail", "; ".join(bad)
    result = check.gantrain(part, "resume", [f"resume={halved}", f"trainer.steps={steps}"])
    if not result.ok:
        return "fail", f"resume: {result.why()}"
    a, b = load_state(straight), load_state(halved)
    if (a["step"], a["images_seen"]) != (b["step"], b["images_seen"]):
        return "fail", f"resumed run at step {b['step']} ({b['images_seen']} images), straight at {a['step']}"
    diff = max_abs_diff(a["model"], b["model"])
    again = None if check.quick else max_abs_diff(a["model"], load_state(rerun)["model"])
    ok, verdict = resume_verdict(diff, again, exact=not check.cuda)
    part.details.update(steps=steps, cut=cut, max_abs_diff=diff, rerun_max_abs_diff=again, tolerance=verdict)
    return ("pass" if ok else "fail"), f"DCGAN {steps} steps vs {cut} + resume to {steps}: {verdict}"


def eval_generate(check: Check, part: Part) -> tuple[str, str]:
    run_dir = check.work / "runs" / "dcgan"
    num = 16 if check.quick else 500
    evaluated = check.run(
        part,
        "eval",
        [
            check.python,
            "-m",
            "gantrain.eval_cli",
            str(run_dir),
            "--num-samples",
            str(num),
            "--device",
            check.device,
            "--cache-dir",
            str(check.work / "cache"),
        ],
    )
    reports = sorted((run_dir / "eval").glob("step_*.json"))
    notes, ok = [], evaluated.ok and bool(reports)
    if ok:
        report = json.loads(reports[-1].read_text())
        metrics, floor = report["metrics"], report.get("floor", {})
        fid = metrics.get("classifier_fid", math.nan)
        ok = math.isfinite(fid)
        notes.append(
            f"eval: classifier_fid {fid:.4g} (real vs real {floor.get('classifier_fid', math.nan):.4g}) at N={num}"
        )
        part.details["eval"] = report
    else:
        notes.append(f"eval: {evaluated.why() if not evaluated.ok else 'no report written'}")
    generated = check.run(
        part,
        "generate",
        [
            check.python,
            "-m",
            "gantrain.tools.generate",
            str(run_dir),
            "--num",
            "64",
            "--device",
            check.device,
            "--name",
            "gpu-check",
        ],
    )
    folder = run_dir / "generate" / "gpu-check"
    images = sorted(folder.glob("seed*.png"))
    if generated.ok and len(images) == 64 and (folder / "grid.png").is_file():
        check.samples.mkdir(exist_ok=True)
        shutil.copy(folder / "grid.png", check.samples / "generate-dcgan.png")
        notes.append("generate: 64 images and their grid")
    else:
        ok = False
        notes.append(f"generate: {generated.why() if not generated.ok else f'{len(images)} images of 64'}")
    return ("pass" if ok else "fail"), "; ".join(notes)


def torchrun_nccl(check: Check, part: Part) -> tuple[str, str]:
    """gantrain's data-parallel code joins only when torchrun starts more than one
    process. With two GPUs or more: two processes, one per GPU, the real thing. With one
    (two processes cannot share a GPU under NCCL, and gantrain gives each its own):
    torchrun starts one process, in which this script makes gantrain take its
    data-parallel path for a world of one (``world_of_one``), so every step's gradients
    go through an NCCL all-reduce; it counts them."""
    overrides, _ = family_overrides(check, "dcgan")
    steps = 4 if check.quick else 50
    overrides = [o for o in overrides if not o.startswith(("trainer.steps=", "device="))]
    overrides += [f"trainer.steps={steps}", f"hydra.run.dir={check.work / 'runs' / 'torchrun'}"]
    nproc = min(2, check.gpus)
    launcher = [check.python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    if nproc >= 2:
        result = check.run(part, "torchrun", [*launcher, "-m", "gantrain.cli", *overrides])
    else:
        result = check.run(part, "torchrun", [*launcher, str(Path(__file__).resolve()), "--world-of-one", *overrides])
    if not result.ok:
        return "fail", f"{result.why()}: {last_line(result.output, r'[Ee]rror') or 'see the log'}"[:400]
    state = load_state(check.work / "runs" / "torchrun")
    if nproc >= 2:
        processes = state["env"].get("processes")
        ok = state["step"] == steps and processes == "2"
        return ("pass" if ok else "fail"), f"2 processes, 2 GPUs, NCCL: {state['step']} steps, {processes} processes"
    counted = last_line(result.output, r"^gpu_check world-of-one:")
    ok = state["step"] == steps and "over nccl" in counted
    return ("pass" if ok else "fail"), (
        "1 process (one GPU), gantrain's data-parallel path forced for a world of "
        f"one: {counted.split(':', 1)[-1].strip() or 'no all-reduce counted'}"
    )


def bench(batch: int) -> Callable[[Check, Part], tuple[str, str]]:
    def run(check: Check, part: Part) -> tuple[str, str]:
        steps = "10" if check.quick else "50"
        rows, notes, failed = [], [], False
        for workload in BENCH_WORKLOADS:
            if check.left(part) < (20 if check.quick else 60):
                notes.append(f"{workload}: not measured (out of time)")
                continue
            args = [
                "--device",
                "cuda",
                "--workloads",
                workload,
                "--batch-size",
                str(batch),
                "--rounds",
                "1",
                "--steps",
                steps,
                "--markdown",
            ]
            if batch > 64:
                args += ["--pix2pix-batch-size", "64"]
            result = check.run(part, workload, check.script("bench.py", *args))
            found = [line for line in result.output.splitlines() if line.startswith(f"| {workload} | cuda |")]
            rows += found[-1:]
            if "out of memory" in result.output:
                notes.append(f"{workload}: out of memory")
            elif result.returncode is None:
                notes.append(f"{workload}: {result.why()}")
            elif not result.ok or not found:
                failed = True
                said = last_line(result.output, r"[Ee]rror")[:200]
                notes.append(f"{workload}: {result.why()}" + (f" ({said})" if said else ""))
            fell_back = [line.strip() for line in result.output.splitlines() if FALLBACK in line and "row" in line]
            notes += fell_back
        header = (
            "| workload | device | batch | GFLOP/img | plain img/s | gantrain img/s | speed-up | plain TFLOP/s "
            "| gantrain TFLOP/s | bf16 peak (plain / gantrain) |"
        )
        align = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        if rows:
            part.details["markdown"] = "\n".join(
                [
                    f"`scripts/bench.py --device cuda --batch-size {batch} --rounds 1 "
                    f"--steps {steps}`, {check.gpu_name}, torch {torch_version()}:",
                    "",
                    header,
                    align,
                    *rows,
                ]
            )
        part.details["rows"] = rows
        summary = f"{len(rows)} of {len(BENCH_WORKLOADS)} workloads measured" + "".join(f"; {n}" for n in notes)
        if failed:
            return "fail", summary
        return ("pass" if rows else "skip"), (summary if rows else "skipped: " + "; ".join(notes))

    return run


def parts(quick: bool = False) -> list[Part]:
    found = [
        Part(
            "device-tests",
            "the tests marked `device`, on CUDA",
            device_tests,
            cuda_only="CI runs these tests on the CPU",
            limit=240,
        ),
        Part(
            "sync-check",
            "scripts/sync_check.py: no host synchronisation inside a step",
            sync_check,
            cuda_only="nothing synchronises on the CPU",
            limit=240,
        ),
    ]
    found += [
        Part(f"train-{family}", f"gantrain, {family}, the default fast path", train_family(family), limit=240)
        for family in FAMILIES
    ]
    # A part comes after the parts it waits for. On a GPU the resume check has runs of
    # its own and starts early; in quick mode it reuses train-dcgan's run.
    found.insert(
        len(found) if quick else 2,
        Part(
            "resume",
            "N steps straight against N/2 + resume=RUN to N",
            resume,
            limit=240,
            after=("train-dcgan",) if quick else (),
        ),
    )
    found += [
        Part(
            "eval-generate",
            "gantrain-eval and gantrain-generate on the DCGAN run",
            eval_generate,
            after=("train-dcgan",),
            limit=180,
        ),
        Part(
            "torchrun-nccl",
            "gantrain under torchrun, gradients over NCCL",
            torchrun_nccl,
            cuda_only="NCCL needs a GPU; gloo under torchrun is in tests/test_distributed.py",
            limit=180,
        ),
        # bench-64 leaves 100 s to bench-512, for dcgan-64 at batch 512 at least.
        Part(
            "bench-64",
            "scripts/bench.py at batch 64",
            bench(64),
            cuda_only="CPU rows: README's Benchmark",
            limit=math.inf,
            quick_limit=math.inf,
            late=True,
            reserve=100,
        ),
        Part(
            "bench-512",
            "scripts/bench.py at batch 512 (pix2pix 64)",
            bench(512),
            cuda_only="CPU rows: README's Benchmark",
            limit=math.inf,
            quick_limit=math.inf,
            late=True,
        ),
    ]
    return found


# -- torchrun with one process ------------------------------------------------------------


def world_of_one(overrides: list[str]) -> None:
    """Runs ``gantrain OVERRIDES`` in this process (started by torchrun) with gantrain's
    data-parallel path on although the world has one process, counting its gradient
    all-reduces and their backend."""
    import torch.distributed as dist

    import gantrain.cli as cli
    from gantrain.engine import distributed

    for module, name in ((cli, "_under_torchrun"), (distributed, "launched_by_torchrun")):
        if not callable(getattr(module, name, None)):
            sys.exit(f"gpu_check world-of-one: {module.__name__}.{name} is gone: update scripts/gpu_check.py")
        setattr(module, name, lambda: True)
    seen = {"count": 0, "backend": None}
    reduce = distributed.DataParallel.reduce_gradients

    def counted(self, net):
        if seen["backend"] is None:
            seen["backend"] = str(dist.get_backend(self.grad_group))
        seen["count"] += 1
        return reduce(self, net)

    distributed.DataParallel.reduce_gradients = counted
    sys.argv = ["gantrain", *overrides]
    try:
        cli.main()
    finally:
        print(f"gpu_check world-of-one: {seen['count']} gradient all-reduce(s) over {seen['backend']}", flush=True)


# -- main -----------------------------------------------------------------------------------


def prepare_out(out: Path) -> None:
    ours = {"report.json", "report.md", "logs", "samples"}
    if out.exists():
        foreign = sorted(set(os.listdir(out)) - ours)
        if foreign:
            sys.exit(f"gpu_check: {out} holds other files ({', '.join(foreign[:3])}): give an empty or new folder")
        for name in ("logs", "samples"):
            shutil.rmtree(out / name, ignore_errors=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--world-of-one"]:
        world_of_one(argv[1:])
        return 0
    t0 = float(os.environ.get("GPU_CHECK_T0") or time.time())  # gpu_check.sh's start: the setup counts
    names = [p.name for p in parts()]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="gpu_report", help="where the report goes (default ./gpu_report)")
    parser.add_argument("--quick", action="store_true", help="toy sizes and few steps (the default without CUDA)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for everything (default 480)")
    parser.add_argument("--parts", nargs="+", choices=names, help="only these parts (and what they need)")
    parser.add_argument("--keep-runs", action="store_true", help="keep the training runs (their folder is printed)")
    args = parser.parse_args(argv)
    prepare_out(Path(args.out_dir))
    check = Check(args, t0)
    chosen = None
    if args.parts:
        chosen = set(args.parts)
        for part in parts(check.quick):
            if part.name in chosen:
                chosen.update(part.after)
    for part in parts(check.quick):
        if chosen is None or part.name in chosen:
            check.add(part)
    print(
        f"gpu_check: {check.gpu_name + f' ({check.gpus} GPU(s))' if check.cuda else 'no CUDA: the CPU'}, "
        f"torch {torch_version()}, {'quick' if check.quick else 'full size'}, budget {args.budget:.0f} s, "
        f"report in {check.out}",
        flush=True,
    )

    def interrupted(signum, frame):
        check.stop_children()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    code = 0
    try:
        write_data(check)
        check.write_report()
        workers = min(5, max(2, (os.cpu_count() or 2) // 3)) if check.cuda else 2
        # The benchmark gets the GPU alone for the rest: at least 35% of the budget.
        phase_end = t0 + (0.65 * args.budget if check.cuda and not check.quick else args.budget - 10)
        check.run_parts(workers, phase_end, chosen)
    except KeyboardInterrupt:
        check.stop_children()
        print("gpu_check: interrupted; the report holds what finished", flush=True)
        code = 130
    finally:
        with check.lock:
            check.write_report()
        if check.keep_runs:
            print(f"gpu_check: the runs are in {check.work}")
        else:
            shutil.rmtree(check.work, ignore_errors=True)
    failed = [p.name for p in check.parts.values() if p.status == "fail"]
    print(
        f"gpu_check: {len(failed)} part(s) failed{': ' + ', '.join(failed) if failed else ''}; "
        f"{check.elapsed():.0f} s; {check.out / 'report.md'}",
        flush=True,
    )
    return code or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
