"""``intrafed route explain``: the dry run of the routing decision."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from intrafed.cli import main


def run(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(arguments))
    return result.exit_code, result.output


def make_ocs(home: Path) -> None:
    for command in (
        ["init", "--role", "ocs", "--fqdn", "ocs1.example.com", "--ip", "127.0.0.3"],
        ["config", "domain", "add", "example.com"],
        ["config", "route", "add", "--domain", "example.com", "--transport", "TLS",
         "--port", "5061", "--fqdn", "imp1.example.com"],
        ["config", "hosts", "add", "imp1.example.com", "127.0.0.2"],
        ["config", "hostauth", "add", "--ip", "127.0.0.2"],
        ["config", "hostauth", "add", "--ip", "127.0.0.9"],
        ["config", "user", "add", "bob@example.com", "--password-file", "-"],
    ):  # fmt: skip
        result = CliRunner().invoke(main, [*command, "--home", str(home)], input="secret\n")
        assert result.exit_code == 0, result.output


def test_explain_forward_local_and_the_peer_guard(tmp_path: Path) -> None:
    home = str(tmp_path / "ocs1")
    make_ocs(tmp_path / "ocs1")
    code, output = run("route", "explain", "--home", home, "sip:alice@example.com")
    assert code == 0
    assert output.startswith("forward to TLS imp1.example.com:5061 (priority 1)\n")
    code, output = run("route", "explain", "--home", home, "sip:bob@example.com", "--json")
    assert json.loads(output)["decision"] == "local"
    code, output = run(
        "route",
        "explain",
        "--home",
        home,
        "sip:ghost@example.com",
        "--from-peer",
        "127.0.0.2",
        "--json",
    )
    explained = json.loads(output)
    assert (explained["decision"], explained["status"]) == ("refuse", 404)
    assert explained["peer"] == (
        "127.0.0.2 is the peer partition "
        "(host authorization 127.0.0.2; next hop of static route example.com)"
    )


def test_a_trusted_host_that_is_no_route_next_hop_is_not_the_peer_partition(
    tmp_path: Path,
) -> None:
    home = str(tmp_path / "ocs1")
    make_ocs(tmp_path / "ocs1")
    code, output = run(
        "route", "explain", "--home", home, "sip:alice@example.com", "--from-peer", "127.0.0.9"
    )
    assert code == 0
    assert output.splitlines()[:2] == [
        "forward to TLS imp1.example.com:5061 (priority 1)",
        "  because: 127.0.0.9 is trusted (host authorization 127.0.0.9) but is no static "
        "route's next hop: not the peer partition",
    ]


def test_explain_refuses_a_bad_uri_as_usage(tmp_path: Path) -> None:
    make_ocs(tmp_path / "ocs1")
    code, output = run("route", "explain", "--home", str(tmp_path / "ocs1"), "no-scheme")
    assert code == 2
    assert "has no scheme" in output


def test_explain_shows_the_peer_directory_decision_in_advanced_mode(tmp_path: Path) -> None:
    home = str(tmp_path / "imp1")
    for command in (
        ["init", "--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2"],
        ["config", "domain", "add", "example.com"],
        ["config", "route", "add", "--domain", "example.com", "--transport", "TCP",
         "--port", "5060", "--ip", "127.0.0.3"],
        ["config", "routing-mode", "advanced"],
        ["config", "directory", "add", "bob@example.com"],
    ):  # fmt: skip
        code, output = run(*command, "--home", home)
        assert code == 0, output
    code, output = run("route", "explain", "--home", home, "sip:bob@example.com")
    assert output.splitlines()[0] == "forward to TCP 127.0.0.3:5060 (priority 1)"
    assert "advanced routing mode: bob@example.com is in the peer directory" in output
    code, output = run("route", "explain", "--home", home, "sip:eve@example.com", "--json")
    explained = json.loads(output)
    assert (explained["decision"], explained["status"]) == ("refuse", 404)
    assert explained["rule"] == (
        "eve@example.com is not in the peer partition's directory (advanced routing mode)"
    )
    assert explained["reasons"][-1] == (
        "advanced routing mode: eve@example.com is not in the peer directory"
    )
