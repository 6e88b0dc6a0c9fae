"""Which of the checker's fixes the console may run as buttons."""

from __future__ import annotations

from pathlib import Path

import pytest

from intrafed.console.commands import fix_commands, run_intrafed

HOME = Path("/srv/intrafed/ocs1")
PEER = Path("/srv/intrafed/imp1")


def test_a_configuration_fix_and_its_apply_become_commands() -> None:
    fix = (
        f"intrafed config hostauth remove --ip 192.0.2.4 --home {HOME} && "
        f"intrafed config hostauth add --ip 192.0.2.4 --home {HOME} && "
        f"intrafed service reload --home {HOME}"
    )
    assert fix_commands(fix, [HOME, PEER]) == [
        ["config", "hostauth", "remove", "--ip", "192.0.2.4", "--home", str(HOME)],
        ["config", "hostauth", "add", "--ip", "192.0.2.4", "--home", str(HOME)],
        ["service", "reload", "--home", str(HOME)],
    ]
    assert fix_commands(f"intrafed config acl add --ip 192.0.2.3 --home {PEER}", [HOME, PEER])


@pytest.mark.parametrize(
    "fix",
    [
        "intrafed pki sign --ca <CA directory> --csr x.csr",
        f"intrafed pki import --store trusted root.pem --home {HOME}",
        "intrafed config user import USERS.csv --home <its new home>",
        "intrafed config fips on --home /somewhere/else",
        "intrafed config fips on",
        f"intrafed service stop --home {HOME}",
        f"rm -rf {HOME}",
        f"intrafed config domain add example.com --home {HOME} && rm -rf /",
        f"intrafed config route add --home {HOME} --domain 'unclosed",
        f"intrafed config user add alice@example.com … --home {HOME}",
        "",
    ],
)
def test_anything_else_stays_a_text(fix: str) -> None:
    assert fix_commands(fix, [HOME, PEER]) is None


def test_commands_run_in_turn_and_stop_at_the_first_failure() -> None:
    outcome = run_intrafed([["--version"], ["no-such-command"], ["--version"]])
    assert not outcome.ok
    lines = outcome.output.splitlines()
    assert lines[0] == "$ intrafed --version"
    assert lines[2] == "$ intrafed no-such-command"
    assert lines.count("$ intrafed --version") == 1
    assert run_intrafed([["--version"]]).ok
