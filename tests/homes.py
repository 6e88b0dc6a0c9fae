"""Node homes for tests that run ``intrafed`` commands on them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from intrafed.config.model import Connection, NodeIdentity, Role
from intrafed.store import create_store


def staged_ocs_home(home: Path, ip: str, port: int) -> None:
    """An OCS node for example.com listening on one TCP port at ``ip``: staged, so the
    staged configuration differs from the running one until the node starts."""
    with create_store(home, NodeIdentity(Role.OCS, "ocs1.example.com", ip)) as store:
        store.stage(
            lambda config: dataclasses.replace(
                config, domains=("example.com",), connections=(Connection("TCP", port, ip),)
            )
        )


def intrafed_process(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an intrafed command in its own process, as an administrator's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "intrafed", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
