"""The ``gantrain`` command as torchrun starts it, for test_distributed.py, which also
learns what each process left running: after ``gantrain.cli.main`` returns or exits (a
normal end, an error, a stop request), this process writes the names of its process
groups' native threads (gloo's ``pt_gloo_runloop`` and ``gloo_tcp_loop``, NCCL's) to
``$THREADS_DIR/rank<N>.txt``. There must be none: a group still alive at interpreter
exit is what aborted processes with "terminate called without an active exception".

    THREADS_DIR=D python -m torch.distributed.run ... tests/cli_worker.py <gantrain overrides>
"""

import os
import sys
from pathlib import Path


def backend_threads() -> list[str]:
    """Names of this process's threads that belong to a collective backend (Linux)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            continue
    return sorted(name for name in names if "gloo" in name or "nccl" in name.lower())


if __name__ == "__main__":
    from gantrain.cli import main

    sys.argv[0] = "gantrain"
    try:
        main()
    finally:
        out = Path(os.environ["THREADS_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{os.environ['RANK']}.txt").write_text("\n".join(backend_threads()))
