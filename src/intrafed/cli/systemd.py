"""Running under systemd: the ``intrafed@.service`` unit template (``intrafed service
unit``), and the node's readiness, reload and stop notices on ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import pwd
import socket
import sys
import time
from importlib.resources import files
from pathlib import Path

UNIT_NAME = "intrafed@.service"
UNIT_DIR = Path("/etc/systemd/system")
_HOME_TREES = ("/home", "/root", "/run/user")
"""Where ProtectHome= hides directories; read-only instead when the nodes need one."""


def notify(state: str) -> bool:
    """Tell the service manager ``state`` (``READY=1``, ``STOPPING=1`` …) as sd_notify(3)
    does; False when not run by one (no ``$NOTIFY_SOCKET``) or it cannot be reached."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket name
    elif not address.startswith("/"):
        return False
    # Non-blocking: the event loop calls this, and a full queue only loses the notice.
    kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
    with socket.socket(socket.AF_UNIX, kind) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True


def reloading() -> str:
    """The notice that a reload begins (with the clock Type=notify-reload asks for)."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}"


def render_unit(
    home_root: Path, user: str, stop_timeout: float, grace: float, privileged_ports: bool
) -> str:
    """The unit template for nodes whose homes are directories of ``home_root``."""
    template = files("intrafed").joinpath("systemd", UNIT_NAME).read_text()
    root = str(home_root)
    capabilities = (
        "# Listeners on ports below 1024 need this one capability, and nothing else.\n"
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"
        if privileged_ports
        else "# No capabilities: every listener is on a port from 1024 (see --privileged-ports).\n"
        "CapabilityBoundingSet=\nAmbientCapabilities=\n"
    )
    # The interpreter too (a venv, or pyenv's Python under /root) must stay visible.
    needed = (root, sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve()))
    inside_home = any(
        path == tree or path.startswith(tree + "/") for path in needed for tree in _HOME_TREES
    )
    return template.format(
        home_root=root,
        user=user,
        command=f"{sys.executable} -m intrafed",
        stop_timeout=f"{stop_timeout:g}",
        grace=f"{grace:g}",
        protect_home="read-only" if inside_home else "yes",
        capabilities=capabilities,
    )


def default_user(home_root: Path) -> str:
    """The owner of ``home_root``: the user its nodes run as."""
    uid = home_root.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
