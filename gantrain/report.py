"""``gantrain-report DIR``: one table of every run under DIR (a multirun directory, or
any folder of runs): the overrides that differ between them and their final numbers,
sorted by a metric. Printed, and written as ``DIR/report.csv`` and ``DIR/report.md``.

A run is a folder with ``.hydra/overrides.yaml``. Its numbers come from what it wrote:
the best evaluation (``eval/best.json``: the metric, its value and step), the last
evaluation report, and the last value of each loss in its TensorBoard events (read
with TensorBoard's own reader); and its health verdict (``verdict``: healthy, or
unhealthy and the causes), judged from the same events as ``gantrain-doctor`` does.
Lower-is-better metrics (FID, KID, classifier FID, losses) sort ascending, the others
descending; ``--metric`` and ``--ascending`` / ``--descending`` choose.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from gantrain.errors import UserError, one_line_errors
from gantrain.metrics.names import LOWER_IS_BETTER as EVAL_LOWER_IS_BETTER

PROG = "gantrain-report"
# The evaluation metrics' own set, plus the losses and validation errors a run logs.
LOWER_IS_BETTER = EVAL_LOWER_IS_BETTER | {"loss/d", "loss/g", "loss/l1", "val/l1"}
LOSS_TAGS = ("loss/d", "loss/g")


def find_runs(root: Path) -> list[Path]:
    """Run directories under ``root`` (a run's own subfolders are not searched)."""
    runs = sorted({p.parent.parent for p in root.glob("**/.hydra/overrides.yaml")})
    return [run for run in runs if not any(other in run.parents for other in runs)]


def _overrides(run: Path) -> dict[str, str]:
    from gantrain.config import recorded_overrides

    listed = recorded_overrides(run / ".hydra") or []
    pairs = (item.split("=", 1) for item in listed if "=" in item)
    return {key.lstrip("+~"): value for key, value in pairs if not key.lstrip("+~").startswith("hydra.")}


def _last_scalars(history: dict[str, list[tuple[int, float]]], tags: tuple[str, ...]) -> dict[str, float]:
    out = {tag: history[tag][-1][1] for tag in tags if history.get(tag)}
    steps = [points[-1][0] for points in history.values() if points]
    if steps:
        out["step"] = float(max(steps))
    return out


def run_numbers(run: Path, history: dict[str, list[tuple[int, float]]] | None = None) -> dict[str, float]:
    """What the run measured: the last evaluation's metrics, the best one, the last losses
    (``history``: the run's scalars, ``gantrain.health.history.read_history``, when read already)."""
    from gantrain.health.history import read_history

    numbers = _last_scalars(read_history(run) if history is None else history, LOSS_TAGS)
    reports = sorted((run / "eval").glob("step_*.json"))
    if reports:
        numbers.update(json.loads(reports[-1].read_text())["metrics"])
    best = run / "eval" / "best.json"
    if best.is_file():
        record = json.loads(best.read_text())
        numbers[f"best_{record['metric']}"] = float(record["value"])
        numbers["best_step"] = float(record["step"])
    return numbers


def default_metric(rows: list[dict]) -> str | None:
    """The best-evaluation metric when the runs evaluated, else G's loss."""
    for row in rows:
        for key in row["numbers"]:
            if key.startswith("best_") and key != "best_step":
                return key
    return "loss/g" if any("loss/g" in row["numbers"] for row in rows) else None


def lower_is_better(metric: str) -> bool:
    return metric.removeprefix("best_") in LOWER_IS_BETTER


def collect(root: Path) -> list[dict]:
    if not root.is_dir():
        raise UserError(
            f"{root}: no such folder; point at a multirun directory, e.g. outputs/multirun/2026-11-24/12-00-00"
        )
    runs = find_runs(root)
    if not runs:
        raise UserError(
            f"no gantrain runs under {root} (a run has .hydra/overrides.yaml): point at a multirun directory"
        )
    return [_row(root, run) for run in runs]


def _row(root: Path, run: Path) -> dict:
    from gantrain.doctor import examine
    from gantrain.health.history import read_history

    history = read_history(run)
    try:
        verdict = examine(run, history)["verdict"]
    except UserError:  # no readable .hydra/config.yaml: nothing to judge the run by
        verdict = "unknown"
    return {
        "run": str(run.relative_to(root)) or ".",
        "overrides": _overrides(run),
        "numbers": run_numbers(run, history),
        "verdict": verdict,
    }


def table(rows: list[dict], metric: str | None, ascending: bool | None) -> tuple[list[str], list[list[str]]]:
    """Header and cells: the run, the overrides that vary, the numbers, the health verdict;
    sorted by ``metric``."""
    keys = sorted({k for row in rows for k in row["overrides"]})
    varying = [k for k in keys if len({row["overrides"].get(k) for row in rows}) > 1] or keys
    names = sorted({k for row in rows for k in row["numbers"]})
    if metric is not None:
        if metric not in names:
            raise UserError(f"--metric {metric}: the runs report {', '.join(names) or 'nothing yet'}")
        names = [metric] + [n for n in names if n != metric]
        up = lower_is_better(metric) if ascending is None else ascending
        missing = [r for r in rows if metric not in r["numbers"] or math.isnan(r["numbers"][metric])]
        present = sorted((r for r in rows if r not in missing), key=lambda r: r["numbers"][metric], reverse=not up)
        rows = present + missing  # runs without the metric (failed, still running) last
    header = ["run", *varying, *names, "verdict"]
    cells = [
        [
            row["run"],
            *(row["overrides"].get(k, "") for k in varying),
            *(_fmt(row["numbers"].get(n)) for n in names),
            row.get("verdict", ""),
        ]
        for row in rows
    ]
    return header, cells


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def plain(header: list[str], cells: list[list[str]]) -> str:
    widths = [max(len(r[k]) for r in [header, *cells]) for k in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *cells])


def write_report(root: Path, header: list[str], cells: list[list[str]]) -> tuple[Path, Path]:
    from gantrain.atomic import atomic_write

    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *cells])
    csv_path, md_path = root / "report.csv", root / "report.md"
    atomic_write(csv_path, lambda f: f.write(buffer.getvalue()), binary=False)
    atomic_write(md_path, lambda f: f.write(markdown(header, cells)), binary=False)
    return csv_path, md_path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a multirun directory (or any folder of runs)")
    parser.add_argument("--metric", help="sort by this column (default: the best evaluation metric, else loss/g)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--ascending", dest="ascending", action="store_true", default=None)
    order.add_argument("--descending", dest="ascending", action="store_false")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    with one_line_errors(PROG):
        rows = collect(args.dir)
        header, cells = table(rows, args.metric or default_metric(rows), args.ascending)
        paths = write_report(args.dir, header, cells)
    print(plain(header, cells))
    print(f"{PROG}: wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    main()
