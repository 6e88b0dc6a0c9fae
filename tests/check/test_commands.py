"""``intrafed check``: the DESIGN §6 JSON, the step table, exit statuses 0/1/2, exported
TOML peers, and the check a starting node logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from intrafed.check import SeedDeployment, Step
from intrafed.cli import main
from intrafed.node import settings_with_tls, tls_contexts_of
from intrafed.store import open_store
from tests.check.mistakes import intrafed, promote
from tests.check.running import seed_on_free_ports


def check(*arguments: str) -> Result:
    result = CliRunner().invoke(main, ["check", *arguments])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_the_seed_deployment_checks_clean_in_json(pristine: SeedDeployment) -> None:
    result = check("--home", str(pristine.ocs.home), "--peer", str(pristine.imp.home), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    # Only the note that the FIPS policy caps TLS at 1.2, on each node.
    assert {(f["rule"], f["severity"]) for f in document["findings"]} == {
        ("tls.fips-tls12", "info")
    }


def test_a_mistake_is_a_finding_in_the_design_format_and_exit_status_1(
    seed: SeedDeployment,
) -> None:
    intrafed("config", "tls-profile", "legacy-tls1", home=seed.ocs.home)
    promote(seed.ocs.home)
    result = check("--home", str(seed.ocs.home), "--peer", str(seed.imp.home), "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    # The IM&P side keeps the FIPS policy: its note (info) is not the point here.
    document["findings"] = [f for f in document["findings"] if f["severity"] != "info"]
    assert document == {
        "ok": False,
        "findings": [
            {
                "rule": "tls.legacy-fips",
                "severity": "error",
                "node": "ocs1.example.com",
                "message": document["findings"][0]["message"],
                "fix": f"intrafed config tls-profile default --home {seed.ocs.home} "
                f"(seed: {Step.FIPS.value})",
            }
        ],
    }


def test_the_table_is_grouped_by_the_seed_steps(seed: SeedDeployment) -> None:
    intrafed("config", "route", "remove", "--domain", "example.com", home=seed.ocs.home)
    result = check("--home", str(seed.ocs.home), "--peer", str(seed.imp.home))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "intrafed check: ocs1.example.com, imp1.example.com"
    assert f"PASS  {Step.DOMAINS.value}" in lines
    assert f"FAIL  {Step.OCS_ROUTE.value}" in lines
    assert f"PASS  {Step.RESTART.value}" in lines
    route = lines.index(f"FAIL  {Step.OCS_ROUTE.value}")
    assert "route.missing" in lines[route + 1]
    assert lines[route + 2].strip().startswith("fix: intrafed config route add")
    assert lines[-1] == "1 error, 0 warnings on 2 nodes"


def test_an_exported_document_stands_in_for_a_peer_home(
    seed: SeedDeployment, tmp_path: Path
) -> None:
    exported = tmp_path / "imp1.toml"
    intrafed("config", "domain", "add", "example.org", home=seed.imp.home)
    intrafed("config", "export", "--file", str(exported), home=seed.imp.home)
    result = check("--home", str(seed.ocs.home), "--peer", str(exported), "--json")
    assert result.exit_code == 1
    rules = {(f["rule"], f["node"]) for f in json.loads(result.stdout)["findings"]}
    assert ("domain.mismatch", "ocs1.example.com") in rules


def test_bad_input_is_one_line_and_exit_status_2(seed: SeedDeployment, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("format = 1\n[node]\nrole = 'pbx'\n")
    for arguments in (
        ("--home", str(tmp_path / "nowhere")),
        ("--home", str(seed.ocs.home), "--peer", str(garbage)),
    ):
        result = check(*arguments)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    result = check("--home", str(seed.ocs.home), "--peer", str(tmp_path / "missing"))
    assert result.exit_code == 2


def test_a_starting_node_logs_each_check_error_once_and_runs(tmp_path: Path) -> None:
    seed = seed_on_free_ports(tmp_path, "127.0.0.68", "127.0.0.69")
    home = seed.ocs.home
    intrafed("config", "hostauth", "remove", "--ip", "127.0.0.68", home=home)
    intrafed("config", "hostauth", "remove", "--fqdn", "imp1.example.com", home=home)
    command = [sys.executable, "-m", "intrafed", "service"]
    started = subprocess.run([*command, "start", "--home", str(home)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    log_file = home / "intrafed.log"
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("started ocs1.example.com")
        # The live probe follows: imp1 is not running, so its route fails to connect.
        deadline = time.monotonic() + 20
        while "probe connect" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        subprocess.run([*command, "stop", "--home", str(home)], capture_output=True, timeout=60,
                       check=False)  # fmt: skip
    log = log_file.read_text()
    [line] = [line for line in log.splitlines() if "check hostauth.ip" in line]
    assert "ERROR" in line
    assert "fix: intrafed config hostauth add --ip 127.0.0.68" in line
    [probed] = [line for line in log.splitlines() if "probe connect" in line]
    assert "ERROR" in probed
    assert "connection refused" in probed


def test_a_node_with_the_legacy_profile_and_fips_on_says_why_it_starts_without_tls(
    seed: SeedDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to say "no certificate selected" with a perfectly good certificate."""
    home = seed.ocs.home
    intrafed("config", "tls-profile", "legacy-tls1", home=home)
    promote(home)
    with open_store(home) as store:
        config = store.load("running")
    with caplog.at_level(logging.WARNING):
        settings = settings_with_tls(config, tls_contexts_of(home, config))
    assert [spec.transport for spec in settings.listeners] == ["TCP"]
    [why] = [r for r in caplog.records if r.getMessage().startswith("no TLS: ")]
    assert why.levelno == logging.ERROR
    assert "legacy-tls1 admits TLS 1.0, which the FIPS policy (fips = on) refuses" in (
        why.getMessage()
    )
    assert "intrafed config tls-profile default" in why.getMessage()
    assert "no certificate selected" not in caplog.text
