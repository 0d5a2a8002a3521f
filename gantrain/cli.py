"""The ``gantrain`` command: Hydra's entry point, kept thin.

Before Hydra runs (and creates a run directory), ``main`` checks the command line: it
composes the config once to catch unknown options and bad values, and turns
``resume=<run dir>`` into the run's own overrides plus yours, pointed at that same
directory. Mistakes end as one line ``gantrain: error: ...`` and exit status 2; an
interrupted run exits with 130 after writing its checkpoint; a run that
``trainer.on_unhealthy=stop`` stopped (``gantrain/health/monitor.py``) with status 1 and one
line ``gantrain: unhealthy: ...`` naming the cause, the step and the overrides to try (in a
sweep the line alone: the other jobs go on, and the sweep exits 1 at its end naming the
stopped runs: ``gantrain/health/sweep.py``).

Under ``torchrun`` (data parallelism), rank 0 alone checks the command line and picks
the run directory, then hands the result to the other processes, which write nothing
into it (no ``.hydra`` copy, no log file): one run, one directory.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gantrain.config import CONF_DIR, CONFIG_NAME, VERSION_BASE, compose_config, recorded_overrides
from gantrain.errors import UserError

# Flags after which Hydra does not train in this process, or trains many jobs.
_NO_PREFLIGHT = set(
    "-h --help --hydra-help -c --cfg -i --info -p --package --shell-completion -sc -m --multirun --run"
    " -r --resolve --config-path -cp --config-name -cn --config-dir -cd --experimental-rerun".split()
)
# What Hydra itself writes into a run directory before our code starts.
_HYDRA_LEFTOVERS = {".hydra", "train.log"}


def _under_torchrun() -> bool:
    """Whether torchrun started this process among others (read before torch is imported)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0")) if _under_torchrun() else 0


def fail(error: Exception, code: int = 2) -> None:
    rank = _rank()
    if rank and type(error).__name__ == "RankZeroError":
        sys.exit(code)  # rank 0 says why
    print(f"gantrain: error: {f'[rank {rank}] ' if rank else ''}{error}", file=sys.stderr)
    sys.exit(code)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _quote(value: Path | str) -> str:
    """A path as a Hydra override value: quoted unless it is plainly safe."""
    text = str(value)
    if re.fullmatch(r"[\w/.:+-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_overrides(run_dir: str, extra: list[str]) -> list[str]:
    """The overrides that made ``run_dir``, updated by ``extra``, aimed back at ``run_dir``.
    A run killed before its first checkpoint has nothing to continue from: it starts over
    from step 0 in its own directory, with the overrides Hydra recorded when it began."""
    from gantrain.engine.checkpoint import last_checkpoint, load_checkpoint

    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise UserError(
            f"resume={run_dir}: no such directory; pass a run directory, e.g. resume=outputs/2026-01-01/12-00-00"
        )
    recorded = path / ".hydra" / "overrides.yaml"
    if last_checkpoint(path).is_file() or not recorded.is_file():
        saved = load_checkpoint(last_checkpoint(path))["overrides"]  # no checkpoint and no record: one line
        resume = [f"resume={_quote(path.resolve())}"]
    else:
        saved = recorded_overrides(recorded.parent)
        if saved is None:
            raise UserError(
                f"{path} was killed while Hydra was recording its command, and has no checkpoint: "
                "there is nothing to continue; start the run again with its command"
            )
        resume = []  # a fresh start: nothing of the killed attempt is trained on
        print(f"gantrain: {path} has no checkpoint yet: starting that run over from step 0", file=sys.stderr)
    extra_keys = {_key(o) for o in extra}
    kept = [o for o in saved if _key(o) not in extra_keys and _key(o) != "resume" and not _key(o).startswith("hydra.")]
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    path = path.resolve()
    return kept + extra + resume + [f"hydra.run.dir={_quote(path)}", f"hydra.output_subdir=.hydra/resume_{stamp}"]


def compose_error(exc: Exception) -> UserError:
    """Hydra's composition errors are several lines long; keep the line that matters."""
    from hydra.errors import MissingConfigException

    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(exc, MissingConfigException) and getattr(exc, "options", None):
        group = (getattr(exc, "missing_cfg_file", None) or "group/").split("/")[0]
        return UserError(f"{lines[0]}; choose {group}= one of: {', '.join(exc.options)}")
    if lines and lines[0].startswith("Could not override"):
        key = lines[0].split("'")[1] if "'" in lines[0] else "?"
        return UserError(
            f"unknown option {key}: check the spelling against `gantrain --cfg job` (or add a new key with +{key}=...)"
        )
    return UserError(lines[0] if lines else type(exc).__name__)


def preflight(overrides: list[str]) -> Path:
    """Compose the config and check it, before Hydra creates anything on disk.
    Returns the run directory the run will use."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose_config(overrides, return_hydra_config=True)
        run_dir = Path(cfg.hydra.run.dir).expanduser().absolute()
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise compose_error(exc) from None
    except Exception as exc:  # Hydra's own code tripping over an odd override (data=[1,2]): still the command line
        raise UserError(
            f"the command line does not compose ({type(exc).__name__}: {' '.join(str(exc).split())}): "
            f"check the overrides, group=option and key=value (`gantrain --help`)"
        ) from None
    from gantrain.config_check import check_config  # imports torch: only once the config composed

    check_config(cfg)
    if cfg.get("init_from") and not cfg.resume:  # a resumed run continues from its own checkpoint
        from gantrain.init_from import source_checkpoint

        source_checkpoint(cfg.init_from)
    return run_dir


# Folders on the way to the run directory that did not exist before this command: a
# run that fails before training removes exactly these, and nothing else.
_created: list[Path] = []


def prepare_argv(args: list[str]) -> list[str]:
    """Check the command line and pin the run directory, before Hydra touches the disk."""
    if any(a.split("=", 1)[0] in _NO_PREFLIGHT for a in args):
        return args
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    resume = [o for o in overrides if _key(o) == "resume"]
    resuming = bool(resume) and "=" in resume[-1] and resume[-1].split("=", 1)[1] not in ("", "null")
    if resuming:
        rest = [o for o in overrides if _key(o) != "resume"]
        overrides = resume_overrides(resume[-1].split("=", 1)[1], rest)
    run_dir = preflight(overrides)
    if not resuming:
        _created[:] = [p for p in [run_dir, *run_dir.parents] if not p.exists()]
        check_writable(run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(
                f"run directory {run_dir} already exists and is not empty: choose another "
                f"hydra.run.dir, or continue that run with resume={run_dir}"
            )
    # Pin the directory: Hydra would otherwise resolve ${now:...} again, a second later.
    return flags + [o for o in overrides if _key(o) != "hydra.run.dir"] + [f"hydra.run.dir={_quote(run_dir)}"]


def check_writable(run_dir: Path) -> None:
    """The run directory can be created and written: made (with its missing parents) and
    a file written in it, then all of that removed again, before Hydra makes it for real."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ".gantrain-write-test").write_bytes(b"")
        (run_dir / ".gantrain-write-test").unlink()
    except OSError as exc:
        raise UserError(
            f"run directory {run_dir} cannot be created or written ({exc.strerror or exc}): "
            f"choose another hydra.run.dir"
        ) from None
    finally:
        for path in _created:  # innermost first: only what this check made, and only if empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _remove_unused_run_dir(run_dir: Path) -> None:
    """A run that failed before training leaves no directory behind: remove the run
    directory if this command created it and only Hydra's own files are in it, then
    the parents this command created, if empty."""
    if run_dir not in _created or not run_dir.is_dir():
        return
    if {p.name for p in run_dir.iterdir()} <= _HYDRA_LEFTOVERS:
        shutil.rmtree(run_dir, ignore_errors=True)
    for parent in _created[1:]:
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


@hydra.main(version_base=VERSION_BASE, config_path=CONF_DIR, config_name=CONFIG_NAME)
def _train(cfg: DictConfig) -> float | None:
    import torch

    from gantrain.build import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir).absolute()
    parallel = _parallel_jobs(hydra_cfg)
    if parallel > 1:
        from gantrain.engine.runtime import share_machine

        device = share_machine(hydra_cfg.job.num, parallel)
        if device is not None and cfg.device == "auto":
            cfg.device = device
    try:
        try:
            status = run(cfg, run_dir, list(hydra_cfg.overrides.task))
        except torch.OutOfMemoryError:
            raise UserError(
                f"out of {cfg.device} memory: lower data.batch_size, or the nets' width "
                f"(model.generator.width, model.discriminator.width); checkpoints written so far "
                f"are kept in {run_dir}"
            ) from None
    except UserError as exc:
        if _rank() != 0:
            pass  # the run directory is rank 0's to tidy (the others write none: output_subdir=null)
        elif not cfg.resume:
            _remove_unused_run_dir(run_dir)
        elif hydra_cfg.output_subdir:
            shutil.rmtree(run_dir / hydra_cfg.output_subdir, ignore_errors=True)
        fail(exc)
    if status == "unhealthy":
        from gantrain.health.record import stop_message

        if _rank() == 0:
            print(f"gantrain: unhealthy: {stop_message(run_dir)}", file=sys.stderr)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            sys.exit(1)
    if status == "interrupted":
        if _rank() == 0:
            print(f"gantrain: interrupted; continue with: gantrain resume={run_dir}", file=sys.stderr)
        sys.exit(130)
    return _sweep_score(run_dir, hydra_cfg)


def _parallel_jobs(hydra_cfg) -> int:
    """How many jobs of this sweep run at once on this machine (joblib's n_jobs; -1: one per core)."""
    if hydra_cfg.mode != RunMode.MULTIRUN or "joblib" not in str(hydra_cfg.launcher.get("_target_", "")):
        return 1
    n_jobs = int(hydra_cfg.launcher.get("n_jobs") or 1)
    return os.cpu_count() or 1 if n_jobs < 0 else n_jobs


def _sweep_score(run_dir: Path, hydra_cfg) -> float | None:
    """What the job returns to Hydra: the best evaluation score (``eval/best.json``), which
    the Optuna sweeper optimises. A sweeper that needs one gets one line when there is none."""
    import json

    best = run_dir / "eval" / "best.json"
    if best.is_file():
        return float(json.loads(best.read_text())["value"])
    if hydra_cfg.mode == RunMode.MULTIRUN and "optuna" in str(hydra_cfg.sweeper.get("_target_", "")):
        fail(
            UserError(
                "the Optuna sweeper optimises the run's evaluation score, and this run has none: "
                "add eval.every=N (and eval.best to choose the metric)"
            )
        )
    return None


def prepare_argv_on_rank0(args: list[str]) -> list[str]:
    """``prepare_argv`` under torchrun: rank 0 checks the command line and pins the run
    directory (its clock decides ``${now:...}``); every process gets its answer."""
    from gantrain.engine import distributed

    parallel = distributed.start()

    def checked() -> list[str]:
        if any(a in ("-m", "--multirun") for a in args):
            raise UserError(
                "torchrun starts one training run on several processes: drop --multirun (run sweeps without torchrun)"
            )
        return prepare_argv(args)

    # A UserError is raised on every process; fail() lets rank 0 alone say it.
    value = parallel.from_rank0(checked)
    if not parallel.is_main:
        value = [*value, "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    return value


def main() -> None:
    torchrun = _under_torchrun()
    try:
        try:
            args = prepare_argv_on_rank0(sys.argv[1:]) if torchrun else prepare_argv(sys.argv[1:])
        except UserError as exc:
            fail(exc)
        sys.argv = [sys.argv[0], *args]
        _train()
    finally:
        if torchrun:  # on every way out: the end, an error (SystemExit), a stop request
            from gantrain.engine import distributed

            distributed.stop()


if __name__ == "__main__":
    main()
