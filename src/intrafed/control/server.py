"""The control socket of a running node: a Unix socket in its home, answered by
``dispatch``. Only the node's own user (or root) is served, checked on the peer's
credentials, not on anything the peer sends."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from pathlib import Path

from intrafed.control.protocol import (
    MAX_REQUEST_BYTES,
    SOCKET_NAME,
    ControlTarget,
    dispatch,
    error_line,
)

logger = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
"""Seconds a client has to send its one request line."""
MAX_SOCKET_PATH = 107
"""Longest path a Unix socket can be bound to on Linux (sun_path minus its NUL)."""


def socket_path(home: Path) -> Path:
    """Where the node of ``home`` listens for control requests."""
    return home / SOCKET_NAME


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serves control requests for ``target`` on the home's control socket."""

    def __init__(self, home: Path, target: ControlTarget) -> None:
        self.path = socket_path(home)
        self._target = target
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; False (and a warning naming why) when the socket cannot be bound —
        the node runs on without a control API."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            logger.warning(
                "control API unavailable: %s is longer than %d bytes, the limit of a Unix "
                "socket path; use a shorter home directory",
                self.path,
                MAX_SOCKET_PATH,
            )
            return False
        # The home's lock is held: a socket file left here is a dead node's.
        self.path.unlink(missing_ok=True)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, limit=MAX_REQUEST_BYTES + 1
            )
        except OSError as exc:
            logger.warning("control API unavailable: cannot listen on %s: %s", self.path, exc)
            return False
        self.path.chmod(0o600)
        return True

    async def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock)
            if uid not in (0, os.geteuid()):
                logger.warning("control request from user id %d refused (not the node's user)", uid)
                return
            try:
                line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            except ValueError:
                answer = error_line(f"request longer than {MAX_REQUEST_BYTES} bytes")
            except TimeoutError:
                answer = error_line(f"no request line within {READ_TIMEOUT:g} s")
            else:
                answer = dispatch(self._target, line)
            writer.write(answer)
            await writer.drain()
        except OSError:
            pass  # the client went away; nothing to answer
        finally:
            writer.close()
