"""Node homes for tests that run ``intrafed`` commands on them."""

from __future__ import annotations

import dataclasses
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
