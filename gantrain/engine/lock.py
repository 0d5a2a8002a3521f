"""One writer per run directory: the run lock (``RUN/run.lock``).

Two processes training into one directory would overwrite each other's checkpoints and
interleave their TensorBoard events (a second ``gantrain resume=RUN`` started while the
first still runs, say). A run therefore holds an advisory lock on ``run.lock`` while it
trains; a second one is refused in one line naming the holder (pid, host, start time).

The lock is an advisory POSIX record lock (``fcntl(F_SETLK)``, Python's ``fcntl.lockf``)
on the open file, not the pid written in it. The kernel releases it when its holder
dies, however it dies (SIGKILL, out of memory; on NFS the server drops the locks of a
client that is gone), so a lock left by a killed run is stale by construction and the
next run takes it over at once. A pid alone cannot tell that: after a crash the pid may
be reused by an unrelated live process (pid namespaces and containers make that common),
which would block the directory for ever, and a pid says nothing about another host
sharing the filesystem. The file's contents only say who holds the lock.

Why not ``flock(2)``: a flock belongs to the open file, which forked children share, and
the data loader's workers are forked; they outlive a SIGKILLed trainer by up to seconds
(until they notice their parent is gone), and would hold its lock that long. A record
lock belongs to the process alone. Its one catch: closing *any* descriptor of the file
releases the process's lock, so the holding process never opens ``run.lock`` twice.

Under torchrun rank 0 holds the lock for every process (``build.run``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import IO

from gantrain.errors import UserError

LOCK_NAME = "run.lock"
BUSY = (errno.EACCES, errno.EAGAIN)  # what F_SETLK answers when another process holds the lock
log = logging.getLogger("gantrain")


def lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOCK_NAME


def holder(run_dir: str | Path) -> dict | None:
    """Who holds the lock of ``run_dir`` now (``pid``, ``host``, ``started``), or None
    when no live process does (no lock file, or one left by a process that died). For
    other processes than the holder: it would release the holder's own lock (see above)."""
    path = lock_path(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        try:  # a shared lock is granted exactly when no process holds the exclusive one
            fcntl.lockf(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            return _read(f) if exc.errno in BUSY else None  # else: a filesystem without locks
        return None


def _read(f: IO) -> dict:
    f.seek(0)
    try:
        record = json.loads(f.read())
    except ValueError:  # the holder is between truncating and writing the file
        record = {}
    return record if isinstance(record, dict) else {}


def _describe(run_dir: Path, record: dict) -> str:
    pid, host = record.get("pid", "?"), record.get("host", "?")
    since = f" since {record['started']}" if record.get("started") else ""
    return (
        f"run directory {run_dir} is being trained by another process (pid {pid} on host {host}{since}): "
        f"wait for it to finish, or stop it (kill {pid} on {host}; its last checkpoint is kept) and then "
        f"continue with resume={run_dir}"
    )


class RunLock:
    """``acquire()`` or a ``UserError`` naming the holder; ``release()`` when the run ends."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self._file: IO | None = None
        # The folders acquire() made (innermost first): release() removes them again when
        # they are empty, so a run that fails before writing anything leaves nothing.
        self._created: list[Path] = []

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        try:
            self._created = [p for p in [self.run_dir, *self.run_dir.parents] if not p.exists()]
            self.run_dir.mkdir(parents=True, exist_ok=True)
            while True:
                # Not truncated on open: the holder's record must stay readable to a refused process.
                f = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), "r+")
                try:
                    fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    record = _read(f) if exc.errno in BUSY else None
                    f.close()
                    if record is not None:
                        raise UserError(_describe(self.run_dir, record)) from None
                    if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        log.warning(
                            "%s: this filesystem has no file locks; a second run here is not refused", self.path
                        )
                        return
                    raise
                # The holder may have released the lock by removing the file between our
                # open and our lock: we would hold a lock on a file nobody else can open.
                # Only the file still at the path counts.
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
                mine = os.fstat(f.fileno())
                if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                    break
                f.close()
            previous = _read(f)
            if previous.get("pid"):
                log.info("took over the lock of a run that is no longer running (pid %s)", previous["pid"])
            f.seek(0)
            f.truncate()
            f.write(json.dumps(self._record()) + "\n")
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            raise UserError(
                f"cannot lock run directory {self.run_dir} ({exc.strerror or exc}): make it writable"
            ) from None
        self._file = f

    @staticmethod
    def _record() -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now().isoformat(" ", "seconds")}

    def release(self) -> None:
        """Remove the file, then unlock (closing it): a process that opened the file in
        between finds it gone and opens a new one (see ``acquire``)."""
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)
        self._file.close()
        self._file = None
        for folder in self._created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
