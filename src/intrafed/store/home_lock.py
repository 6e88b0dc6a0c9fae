"""One node per home: ``intrafed serve`` holds an exclusive ``flock`` on ``HOME/intrafed.lock``
for as long as it runs and writes its pid there. The kernel drops the lock when the process
ends, however it ends, so a pid is trusted (signalled) only while its lock is held: a stale
pid file never gets an unrelated process killed.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_FILE = "intrafed.lock"
ACQUIRE_ATTEMPTS = 20
ACQUIRE_PAUSE = 0.05
"""A command asking whether the node runs holds the lock (shared) for an instant: a starting
node tries this many times, this many seconds apart, before it gives up."""


class HomeInUseError(Exception):
    """Another node runs on the home; ``pid`` is its process (None if it is unreadable)."""

    def __init__(self, home: Path, pid: int | None) -> None:
        shown = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"a node already runs on {home} ({shown})")
        self.pid = pid


class HomeLock:
    """The lock of a home, held by the running node until ``release``."""

    def __init__(self, home: Path, attempts: int = ACQUIRE_ATTEMPTS) -> None:
        """Take the lock and write our pid in it; ``HomeInUseError`` when another node holds
        it (after ``attempts`` tries, ``ACQUIRE_PAUSE`` apart)."""
        fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt + 1 == attempts:
                    pid = _pid_in(fd)
                    os.close(fd)
                    raise HomeInUseError(home, pid) from None
                time.sleep(ACQUIRE_PAUSE)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (the node has stopped)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


class ServingLock:
    """The home's lock as the serving process holds it: taken at start (by a successor,
    once it serves), given up when the process stops or has handed over."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._lock: HomeLock | None = None

    def take(self, attempts: int) -> None:
        """``HomeInUseError`` when another node still holds it after ``attempts`` tries."""
        self._lock = HomeLock(self._home, attempts)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def holder(home: Path) -> int | None:
    """The pid of the node running on ``home``: the process that holds the home's lock and
    wrote its pid in it, and whose command line is intrafed's; None when no node runs."""
    try:
        fd = os.open(home / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(fd)
            return pid if pid is not None and _runs_intrafed(pid, home) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _pid_in(fd: int) -> int | None:
    try:
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return pid if pid > 0 else None


def _runs_intrafed(pid: int, home: Path) -> bool:
    """Whether ``pid`` runs ``intrafed serve`` for ``home`` (checked where /proc tells; the
    lock alone elsewhere)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    if b"serve" not in arguments or not any(b"intrafed" in argument for argument in arguments):
        return False
    given = _home_argument(arguments)
    if given is None:
        return True  # from INTRAFED_HOME
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return True
    return (cwd / os.fsdecode(given)).resolve() == home.resolve()


def _home_argument(arguments: list[bytes]) -> bytes | None:
    for index, argument in enumerate(arguments):
        if argument == b"--home" and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(b"--home="):
            return argument.removeprefix(b"--home=")
    return None
