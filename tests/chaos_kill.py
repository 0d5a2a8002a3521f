"""Training processes to kill: the real ``gantrain`` command started in the background, its
stderr in a file (a pipe nobody reads can fill up and stall the trainer), killed with
SIGKILL, the one signal a process cannot catch, as the kernel's out-of-memory killer or a
pre-empted machine does. Shared by the crash tests (``test_reliability``, ``test_chaos``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


class Trainee:
    """One ``python -m gantrain.cli ARGS`` process, started in ``cwd``."""

    def __init__(self, cwd: Path, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "w") as stderr:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gantrain.cli", *args],
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **(env or {})},
            )
        self.started = time.time()

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> str:
        """SIGKILL (unless it has already exited); its stderr."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        return self.stderr

    def signal(self, signum: int, timeout: float = 120) -> str:
        """Send ``signum``, wait for the exit; its stderr."""
        self.proc.send_signal(signum)
        self.proc.wait(timeout=timeout)
        return self.stderr

    def wait_for(self, path: Path, deadline: float = 180) -> None:
        """Until ``path`` exists; the process must not exit first."""
        end = time.time() + deadline
        while not path.exists():
            assert self.alive(), self.stderr
            assert time.time() < end, f"{path} never appeared"
            time.sleep(0.05)


def steps_shown(stderr: str) -> int:
    """The last step count tqdm printed (it lags the true count a little, never leads)."""
    counts = re.findall(r"(\d+)/\d+ \[", stderr)
    return int(counts[-1]) if counts else 0
