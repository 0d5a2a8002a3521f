"""The ``gantrain`` command run many times without paying torch's import each time, for
test_cli_properties.py: this process imports gantrain (torch, Hydra) once, then reads
one JSON request a line, ``{"args": [...], "cwd": ..., "out": ..., "err": ..., "timeout": s}``,
forks a child that runs ``gantrain.cli.main`` with ``sys.argv = ["gantrain", *args]`` in
``cwd``, its stdout and stderr in the files ``out`` and ``err``, exactly as the command
does (an uncaught exception prints its traceback and exits 1), and answers ``{"rc": N}``
(``-9`` when the child ran past ``timeout`` and was killed).

Forking is safe here: nothing in this process has started a thread (torch starts its
pools at the first parallel op, which only the children run).
"""

import json
import os
import signal
import sys
import time
import traceback

import gantrain.build  # noqa: F401  (imported before the forks: the children find it loaded)
import gantrain.cli


def child(request: dict) -> None:
    os.chdir(request["cwd"])
    for fd, path in ((1, request["out"]), (2, request["err"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = ["gantrain", *request["args"]]
    code = 0
    try:
        gantrain.cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        deadline = time.monotonic() + request["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
