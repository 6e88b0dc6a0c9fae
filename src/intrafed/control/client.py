"""Asking a running node over its control socket (blocking: the CLI's side)."""

from __future__ import annotations

import socket
from pathlib import Path

from intrafed.control.protocol import (
    ControlError,
    JsonObject,
    Refused,
    decode_answer,
    encode_request,
)
from intrafed.control.server import socket_path

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""A node's answer larger than this is not read to the end."""


class NodeNotRunningError(ControlError):
    """No node answers on the home's control socket."""


def ask(
    home: Path, op: str, timeout: float = 10.0, **args: str | None
) -> JsonObject | list[JsonObject] | Refused:
    """Send one request to the node of ``home`` and return its result."""
    path = socket_path(home)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NodeNotRunningError(
                f"no node is running on {home} (start it: intrafed service start --home {home})"
            ) from None
        except OSError as exc:
            raise ControlError(f"cannot reach the node on {path}: {exc.strerror}") from None
        try:
            sock.sendall(encode_request(op, **args))
            answer = _read_line(sock)
        except TimeoutError:
            raise ControlError(f"the node on {home} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"the node on {home} closed the control socket: {exc}") from None
    return decode_answer(answer)


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_ANSWER_BYTES:
            break
    if not chunks:
        raise ControlError("the node closed the control socket without answering")
    return b"".join(chunks)
