"""gantrain's commands run many times without paying their imports each time: this process
imports gantrain and what its commands load (torch, torchvision, Hydra, TensorBoard, the
tools) once, then reads one JSON request a line,
``{"module": "gantrain.cli", "args": [...], "cwd": ..., "env": {...}, "out": ..., "err": ...,
"timeout": s}``, forks a child that runs ``<module>.main()`` with
``sys.argv = [<module>, *args]`` in ``cwd`` with ``env`` added to its environment, its
stdout and stderr in the files ``out`` and ``err``, exactly as the command does (an
uncaught exception prints its traceback and exits 1; the interpreter's exit handlers run),
and answers ``{"rc": N}`` (``-9`` when the child ran past ``timeout`` and was killed).

The child is a real process with its own memory, files and exit status; what it does not
have is a fresh interpreter. So tests whose point is the process's start (a
``sitecustomize`` on ``PYTHONPATH``, what an import loads, signals during start-up,
torchrun) start the command themselves (``conftest.gantrain(..., fresh=True)``).

Forking is safe here: nothing in this process has started a thread (torch starts its
pools at the first parallel op, which only the children run); ``main`` checks that.
"""

import atexit
import importlib
import json
import os
import signal
import sys
import time
import traceback

# What the commands import on their way to work, loaded before any fork so that no child
# pays for it. The CLI imports these lazily (tests/test_startup.py keeps it so).
PRELOAD = [
    "gantrain.cli",
    "gantrain.build",
    "gantrain.eval_cli",
    "gantrain.report",
    "gantrain.doctor",
    "gantrain.export.cli",
    "gantrain.tools.generate",
    "gantrain.tools.walk",
    "gantrain.tools.arithmetic",
    "gantrain.tools.invert",
    "gantrain.tools.dissect",
    "gantrain.metrics.inception",
    "gantrain.metrics.paired",
    "torchvision",
    "torch._dynamo",
    "torch.utils.tensorboard",
    "hydra._internal.core_plugins.basic_launcher",
    "hydra._internal.core_plugins.basic_sweeper",
]


def child(request: dict) -> None:
    os.chdir(request["cwd"])
    os.environ.update(request.get("env") or {})
    for fd, path in ((1, request["out"]), (2, request["err"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = [request["module"], *request["args"]]
    code = 0
    try:
        importlib.import_module(request["module"]).main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # what the interpreter runs at exit (os._exit below would skip it)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    if len(os.listdir("/proc/self/task")) != 1:  # every thread, Python's and native ones
        raise SystemExit("cli_forker: a thread was started by the preloaded imports; forking is no longer safe")
    print(json.dumps({"ready": True}), flush=True)
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
            time.sleep(0.01)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
