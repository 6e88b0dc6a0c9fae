"""``intrafed service restart`` without dropping a request: the running node starts its
successor (its own command line again) with its listening sockets inherited, so both
accept from the same queues and no waiting connection is lost; once the successor serves,
it says so over a pipe, the old node stops accepting, gives up the home's lock, and drains
(``Node.drain``) before it exits.

The successor learns what it inherits from two environment variables, read once and
removed: the descriptors of the listening sockets with the listener each serves, and the
pipe to write its one byte of readiness to.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from intrafed.config.model import ConfigError
from intrafed.transport import ListenerSpec

LISTENERS_ENV = "INTRAFED_LISTEN_FDS"
READY_ENV = "INTRAFED_READY_FD"
READY = b"R"


@dataclass(frozen=True, slots=True)
class Succession:
    """What a successor inherited: the listening socket of each listener, and the pipe
    that tells its predecessor this process serves."""

    sockets: dict[ListenerSpec, socket.socket]
    ready_fd: int

    def serving(self) -> None:
        """The listeners accept here now: the predecessor may stop accepting."""
        try:
            os.write(self.ready_fd, READY)
        finally:
            os.close(self.ready_fd)

    def close_unused(self, listeners: Iterable[ListenerSpec]) -> None:
        """Close the inherited sockets of listeners the new configuration dropped."""
        for spec in set(self.sockets) - set(listeners):
            self.sockets[spec].close()


def inherited() -> Succession | None:
    """The sockets and pipe this process inherited from the node it replaces; None when
    it was started afresh; ``ConfigError`` when what the environment names is unusable."""
    listeners = os.environ.pop(LISTENERS_ENV, None)
    ready = os.environ.pop(READY_ENV, None)
    if listeners is None or ready is None:
        return None
    try:
        sockets = {
            ListenerSpec(ip, transport, port): socket.socket(fileno=fd)
            for ip, transport, port, fd in json.loads(listeners)
        }
        for sock in sockets.values():
            sock.set_inheritable(False)
        return Succession(sockets, int(ready))
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(
            LISTENERS_ENV,
            f"cannot use the listening sockets handed over ({exc})",
            f"unset {LISTENERS_ENV} and {READY_ENV}: only intrafed service restart sets them",
        ) from None


@dataclass(frozen=True, slots=True)
class Successor:
    """A started successor and the read end of its readiness pipe."""

    process: subprocess.Popen[bytes]
    ready_fd: int

    async def ready(self, timeout: float) -> str | None:
        """Wait until the successor serves: None once it does, else why it does not (it
        ended, or said nothing within ``timeout`` s; it is then stopped)."""
        try:
            said = await asyncio.to_thread(_read_within, self.ready_fd, timeout)
        finally:
            os.close(self.ready_fd)
        if said == READY:
            return None
        if said is None:
            self.process.terminate()
            reason = f"the new process did not serve within {timeout:g} s"
        else:
            code = await asyncio.to_thread(self.process.wait)
            reason = f"the new process ended (exit status {code}) before it served"
        return reason


def _read_within(fd: int, timeout: float) -> bytes | None:
    readable, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 1) if readable else None


def start_successor(listeners: list[tuple[ListenerSpec, int]]) -> Successor:
    """Start this process's command line again with ``listeners`` (spec, descriptor)
    inherited, in a session of its own (it outlives this process)."""
    read_fd, write_fd = os.pipe()
    fds = [fd for _spec, fd in listeners]
    described = [[spec.ip, spec.transport, spec.port, fd] for spec, fd in listeners]
    environment = {**os.environ, LISTENERS_ENV: json.dumps(described), READY_ENV: str(write_fd)}
    try:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and command line)
            sys.orig_argv,
            stdin=subprocess.DEVNULL,
            env=environment,
            pass_fds=(*fds, write_fd),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return Successor(process, read_fd)
