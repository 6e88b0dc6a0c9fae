"""The seed's task list, automated: the static checker, the live probe, and the seed
deployment they are tested against (DESIGN §5, §6)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from pathlib import Path

from intrafed.check.deployment import (
    SeedDeployment,
    SeedNode,
    SeedUser,
    build_seed_deployment,
)
from intrafed.check.facts import NodeFacts, Resolution, load_home, load_node, resolve_name
from intrafed.check.findings import CheckReport, Finding, Rule, Step
from intrafed.check.rules import RULES, check_nodes


def check_homes(
    home: Path,
    peers: Sequence[Path] = (),
    now: datetime.datetime | None = None,
    *,
    is_running: Callable[[Path], bool] = lambda home: False,
) -> CheckReport:
    """Check the node at ``home`` and, when given, the other side's homes or exported
    documents; ``is_running`` says whether a node runs on a home (a running node must run
    what was checked)."""
    nodes = [
        load_home(home, running=is_running(home)),
        *(load_node(peer, running=peer.is_dir() and is_running(peer)) for peer in peers),
    ]
    return check_nodes(nodes, now)


__all__ = [
    "RULES",
    "CheckReport",
    "Finding",
    "NodeFacts",
    "Resolution",
    "Rule",
    "SeedDeployment",
    "SeedNode",
    "SeedUser",
    "Step",
    "build_seed_deployment",
    "check_homes",
    "check_nodes",
    "load_home",
    "load_node",
    "resolve_name",
]
