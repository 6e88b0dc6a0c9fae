"""Two nodes on one machine whose listeners take the same port: ``check --peer`` says so
as an error, and its fix, applied as printed, lets both nodes start and reach each other.

The README's walk-through once set OCS's connections on All (0.0.0.0): on a lab machine
that holds imp1 too, imp1 then could not listen, and ocs1's start-up probe reached itself.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from intrafed.check import build_seed_deployment
from intrafed.cli.main import main
from intrafed.pki import KeyType
from tests.integration.federation import free_base_port

IMP_IP, OCS_IP = "127.0.0.62", "127.0.0.63"
ANY = "0.0.0.0"  # noqa: S104 - the mistake: a connection on All


def cli(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(arguments))
    return result.exit_code, result.output


def node_process(*arguments: str) -> str:
    command = [sys.executable, "-m", "intrafed", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(arguments)}: {result.stdout}{result.stderr}"
    return result.stdout


def clash_findings(ocs: Path, imp: Path) -> tuple[int, list[dict[str, str]]]:
    status, output = cli("check", "--home", str(ocs), "--peer", str(imp), "--json")
    findings = json.loads(output)["findings"]
    return status, [f for f in findings if f["rule"] == "listener.clash"]


def test_a_connection_on_all_that_takes_the_peer_nodes_port_on_one_machine_is_an_error(
    tmp_path: Path,
) -> None:
    base = free_base_port([ANY])  # free on every address, so on both nodes' too
    seed = build_seed_deployment(
        tmp_path, imp_ip=IMP_IP, ocs_ip=OCS_IP, base_port=base, key_type=KeyType.EC_P256
    )
    ocs, imp = seed.ocs.home, seed.imp.home
    for ip in (OCS_IP, "All"):
        verb = "remove" if ip == OCS_IP else "add"
        status, output = cli("config", "connection", verb, "--transport", "TCP", "--port",
                             str(base), "--ip", ip, "--home", str(ocs))  # fmt: skip
        assert status == 0, output

    status, [finding] = clash_findings(ocs, imp)
    assert status == 1
    assert finding["severity"] == "error"
    assert f"TCP connection on All:{base}" in finding["message"]
    assert f"imp1.example.com's TCP listener on {IMP_IP}:{base}" in finding["message"]
    fix = finding["fix"].split(" (seed: ")[0]
    for command in fix.split(" && "):
        status, output = cli(*shlex.split(command.removeprefix("intrafed ")))
        assert status == 0, f"{command}: {output}"
    assert clash_findings(ocs, imp) == (0, [])

    try:
        node_process("service", "start", "--home", str(ocs))
        node_process("service", "start", "--home", str(imp))
        probed = node_process("probe", "--home", str(imp))
        assert f"TCP {IMP_IP}:{base}: accepts connections" in probed
        assert "PASS  options" in probed
    finally:
        for home in (imp, ocs):
            stop = [sys.executable, "-m", "intrafed", "service", "stop", "--home", str(home)]
            subprocess.run(stop, capture_output=True, check=False, timeout=60)
