"""``gantrain-doctor RUN_DIR [RUN_DIR...]``: is a run healthy? Reads a finished or a
running run's TensorBoard events (``RUN/tb``) and its config, replays the health rules
(``gantrain/health/diagnose.py``) at every log step, and prints the timeline of
diagnoses (step range, cause, explanation, the overrides to try) and a verdict. A folder
of runs (a multirun directory) gets one block per run and a summary.

Exit status: 0 when every run is healthy, 1 when any is not (scripts and sweeps can test
it), 2 when the input is wrong (one line on stderr). Runs made before the health signals
existed have no ``health/`` tags: they are judged from their losses and evaluations only,
and the output says so. ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from gantrain.errors import UserError, one_line_errors

PROG = "gantrain-doctor"


def runs_under(path: Path) -> list[Path]:
    """``path`` itself when it is a run (it has ``.hydra/config.yaml``), else the runs under it."""
    from gantrain.report import find_runs

    if not path.is_dir():
        raise UserError(f"{path}: no such folder; point at a run directory (or a multirun directory)")
    if (path / ".hydra" / "config.yaml").is_file():
        return [path]
    runs = find_runs(path)
    if not runs:
        raise UserError(f"no gantrain runs under {path} (a run has .hydra/config.yaml): point at a run directory")
    return runs


def examine(run: Path, history: dict | None = None) -> dict:
    """One run's health: its verdict, episodes, last logged step, and notes on what it lacks.
    ``history``: the run's scalars when the caller read them already (gantrain-report)."""
    from gantrain.health.diagnose import timeline, unhealthy_causes, verdict
    from gantrain.health.history import read_context, read_history

    context = read_context(run)
    history = read_history(run) if history is None else history
    episodes = timeline(history, context)
    last_step = max((points[-1][0] for points in history.values() if points), default=0)
    notes = []
    if not history:
        notes.append("no scalars logged yet")
    elif not any(tag.startswith("health/") for tag in history):
        notes.append("no health/ signals (a run from before them): judged from its losses and evaluations only")
    return {
        "run": str(run),
        "verdict": verdict(episodes, last_step),
        "healthy": not unhealthy_causes(episodes, last_step),
        "last_step": last_step,
        "steps": context.steps,
        "notes": notes,
        "episodes": [asdict(episode) for episode in episodes],
    }


def render(result: dict) -> str:
    """The block ``gantrain-doctor`` prints for one run."""
    lines = [f"{result['run']}: step {result['last_step']} of {result['steps']}"]
    lines += [f"  note: {note}" for note in result["notes"]]
    for episode in result["episodes"]:
        end = "now" if episode["end"] is None else episode["end"]
        lines.append(f"  steps {episode['start']}-{end}: {episode['cause']}: {episode['explanation']}")
        if episode["overrides"]:
            lines.append(f"    try: {' '.join(episode['overrides'])}")
    if not result["episodes"] and result["last_step"]:
        lines.append("  no diagnosis at any log step")
    lines.append(f"  verdict: {result['verdict']}")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    sick = [r for r in results if not r["healthy"]]
    line = f"{len(results)} runs: {len(results) - len(sick)} healthy, {len(sick)} unhealthy"
    return line + "".join(f"\n  {r['run']}: {r['verdict']}" for r in sick)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="a run directory or a multirun folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    with one_line_errors(PROG):
        runs = [run for path in args.runs for run in runs_under(path)]
        results = [examine(run) for run in dict.fromkeys(runs)]
    healthy = all(r["healthy"] for r in results)
    if args.json:
        print(json.dumps({"healthy": healthy, "runs": results}, indent=2))
    else:
        print("\n\n".join(render(r) for r in results))
        if len(results) > 1:
            print("\n" + summary(results))
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
