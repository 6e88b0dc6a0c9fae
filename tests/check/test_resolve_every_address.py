"""A route's name resolves to every address it has: the hosts table's one entry first,
else every address the system resolver returns, in its order, without repeats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from intrafed.check import resolve_name
from intrafed.config.model import HostEntry, NodeConfig, NodeIdentity, Role
from tests.hosts_namespace import hosts_file, needs_root, with_hosts

CLUSTER = "cup.example.com"
MEMBERS = ("127.0.49.3", "127.0.49.4")
RESOLVE = (
    "import json, sys; from intrafed.check import resolve_name; "
    "from intrafed.config.model import NodeConfig, NodeIdentity, Role; "
    "config = NodeConfig(NodeIdentity(Role.OCS, 'ocs1.example.com', '127.0.49.2')); "
    "r = resolve_name(config, sys.argv[1]); print(json.dumps([r.addresses, r.source]))"
)


def config(*hosts: HostEntry) -> NodeConfig:
    return NodeConfig(NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.49.2"), hosts=hosts)


def test_a_hosts_table_entry_is_the_one_address() -> None:
    resolution = resolve_name(config(HostEntry(CLUSTER, "127.0.49.9")), CLUSTER.upper())
    assert (resolution.addresses, resolution.address) == (("127.0.49.9",), "127.0.49.9")
    assert resolution.source == "hosts table"


def test_a_name_that_does_not_resolve_has_no_address() -> None:
    resolution = resolve_name(config(), "nowhere.invalid")
    assert (resolution.addresses, resolution.address) == ((), None)
    assert resolution.source.startswith("DNS")


@needs_root
def test_a_name_with_one_record_per_member_resolves_to_every_member_once(
    tmp_path: Path,
) -> None:
    hosts = hosts_file(
        tmp_path / "hosts", [(MEMBERS[0], CLUSTER), (MEMBERS[1], CLUSTER), (MEMBERS[0], CLUSTER)]
    )
    argv = with_hosts(hosts, [sys.executable, "-c", RESOLVE, CLUSTER])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout) == [list(MEMBERS), "DNS"]
