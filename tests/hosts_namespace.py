"""Processes that resolve names through a hosts file of the test's own: each is started in a
private mount namespace (``unshare --mount``) with the file bind-mounted over /etc/hosts, so
the system resolver (glibc: ``files`` first in nsswitch.conf, ``multi on`` in host.conf)
returns every line naming a host, in the file's order. Needs root, as CI runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a private /etc/hosts needs root and unshare(1) (CI runs the tests as root)",
)


def hosts_file(path: Path, entries: Sequence[tuple[str, str]]) -> Path:
    """Write ``(address, name)`` lines to ``path``, in order, after localhost's."""
    lines = ["127.0.0.1 localhost", *(f"{address} {name}" for address, name in entries)]
    path.write_text("\n".join(lines) + "\n")
    return path


def with_hosts(hosts: Path, argv: Sequence[str]) -> list[str]:
    """The command line running ``argv`` with ``hosts`` as its /etc/hosts."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(hosts), *argv]
