"""How long each command takes to answer when it ends before any work: a bad option,
``--help`` and ``--cfg job`` of ``gantrain``, and every ``gantrain-*`` tool's ``--help``,
each as the median of ``--repeat`` runs, beside ``python -c "import torch"`` measured the
same way, interleaved (one round runs every command once), so that a machine slowing
down mid-way slows both. README "Start-up" quotes its output.

    python scripts/startup_times.py [--repeat 5]

The commands run from an empty temporary folder; the bad option leaves no run directory
there. Run it alone: a second torch process on a 2-core machine slows both."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TOOLS = ["eval", "generate", "walk", "arithmetic", "invert", "dissect", "report", "doctor", "export"]
COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "gantrain model.generator.width=0": [str(BIN / "gantrain"), "model.generator.width=0"],
    "gantrain --help": [str(BIN / "gantrain"), "--help"],
    "gantrain --cfg job": [str(BIN / "gantrain"), "--cfg", "job"],
    **{f"gantrain-{tool} --help": [str(BIN / f"gantrain-{tool}"), "--help"] for tool in TOOLS},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.repeat):
            for name, command in COMMANDS.items():
                start = time.perf_counter()
                subprocess.run(command, cwd=cwd, capture_output=True)
                times[name].append(time.perf_counter() - start)
    torch_time = statistics.median(times['python -c "import torch"'])
    print(f"| command | median of {args.repeat} (s) | / import torch |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.2f} | {median / torch_time:.2f} |")


if __name__ == "__main__":
    main()
