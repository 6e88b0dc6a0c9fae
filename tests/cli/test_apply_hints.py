"""What an edit says applies it (``reload`` or ``restart``) is what a running node does:
``Node.reload`` takes every setting the hint sends to reload, and refuses the rest."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from intrafed.cli import main
from intrafed.node import Node, settings_with_tls, tls_contexts_of
from intrafed.store import open_store
from tests.integration.federation import build_partitions
from tests.integration.peers import free_port

EDITS = [
    (["config", "user", "add", "dave@example.com", "--password-file", "-"], "reload"),
    (["config", "user", "set", "alice@example.com", "--password-file", "-"], "reload"),
    (["config", "route", "set", "--domain", "example.com", "--port", "5070"], "reload"),
    (["config", "hosts", "set", "ocs1.example.com", "127.0.0.99"], "reload"),
    (
        ["config", "peer-subject", "set", "ocs1.example.com", "--new-name", "p.example.com"],
        "reload",
    ),
    (["config", "hostauth", "set", "--ip", "127.0.0.97", "--no-throttle-as-server"], "reload"),
    (
        [
            "config",
            "connection",
            "set",
            "--transport",
            "TLS",
            "--port",
            "{client_tls}",
            "--ip",
            "127.0.0.98",
            "--new-transport",
            "MTLS",
            "--new-port",
            "{free}",
        ],
        "restart",
    ),
    (["config", "hosts", "add", "ocs2.example.com", "127.0.0.99"], "reload"),
    (["config", "routing-mode", "advanced"], "reload"),
    (["config", "digest", "MD5"], "reload"),
    (["config", "fips", "off"], "reload"),
    (["config", "rate-limit", "set", "--client-rate", "10", "--client-burst", "20"], "reload"),
    (["config", "acl", "add", "--ip", "127.0.0.98"], "reload"),
    (["config", "listener", "set", "--tcp", "5070"], "restart"),
]


def hint(arguments: list[str], home: Path) -> str:
    result = CliRunner().invoke(main, [*arguments, "--home", str(home)], input="secret\n")
    assert result.exit_code == 0, result.output
    found = re.search(r"apply with intrafed service (\w+) --home ", result.output)
    assert found is not None, result.output
    return found.group(1)


@pytest.mark.parametrize(("arguments", "expected"), EDITS, ids=lambda e: " ".join(e[1:3]))
def test_an_edit_says_reload_exactly_when_a_reload_applies_it(
    tmp_path: Path, arguments: list[str], expected: str
) -> None:
    deployment = build_partitions(tmp_path, "127.0.0.97", "127.0.0.98")
    ocs = arguments[1] in ("hostauth", "connection")
    home = deployment.ocs.home if ocs else deployment.imp.home
    ports = {"client_tls": deployment.ocs.client_tls_port, "free": free_port("127.0.0.98")}
    said = hint([argument.format(**ports) for argument in arguments], home)

    async def reload_refusal() -> str | None:
        with open_store(home) as store:
            node = Node.from_home(home, store)
            await node.start()
            try:
                staged = store.load("staged")
                return node.reload(settings_with_tls(staged, tls_contexts_of(home, staged)))
            finally:
                await node.stop(grace=0.1)

    refusal = asyncio.run(asyncio.wait_for(reload_refusal(), 30))
    assert said == expected
    assert (said == "reload") == (refusal is None), refusal
