"""``intrafed init`` and ``intrafed config …``: every command and every refusal, in process
(CliRunner) and as real processes on real SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import tomli_w
from click.testing import CliRunner, Result

from intrafed.cli import main
from intrafed.cli.config_commands import config_group, init_command
from intrafed.store.sqlite import FILENAME


def applied_by(home: str, command: str = "reload") -> str:
    """The note after an edit: what applies the staged configuration of ``home``."""
    return f"(staged; apply with intrafed service {command} --home {home})"


def invoke(*arguments: str, stdin: str | bytes | None = None) -> Result:
    result = CliRunner().invoke(main, list(arguments), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def ok(*arguments: str, stdin: str | bytes | None = None) -> str:
    result = invoke(*arguments, stdin=stdin)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def refused(*arguments: str, stdin: str | bytes | None = None) -> str:
    """The one line on standard error of a refusal (exit status 2, nothing on stdout)."""
    result = invoke(*arguments, stdin=stdin)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def init(home: Path, role: str, *extra: str) -> None:
    fqdn, ip = (
        ("ocs1.example.com", "127.0.0.3") if role == "ocs" else ("imp1.example.com", "127.0.0.2")
    )
    ok("init", "--home", str(home), "--role", role, "--fqdn", fqdn, "--ip", ip, *extra)


@pytest.fixture
def ocs(tmp_path: Path) -> str:
    home = tmp_path / "ocs1"
    init(home, "ocs")
    ok("config", "domain", "add", "--home", str(home), "example.com")
    return str(home)


@pytest.fixture
def imp(tmp_path: Path) -> str:
    home = tmp_path / "imp1"
    init(home, "imp")
    ok("config", "domain", "add", "--home", str(home), "example.com")
    return str(home)


def config(home: str, *arguments: str, stdin: str | bytes | None = None) -> str:
    """``intrafed config ARGUMENTS --home HOME``, which must succeed."""
    return ok("config", *arguments, "--home", home, stdin=stdin)


def config_json(home: str, *arguments: str) -> Any:
    return json.loads(config(home, *arguments, "--json"))


def staged(home: str) -> dict[str, object]:
    document = json.loads(config(home, "show", "--json"))
    assert isinstance(document, dict)
    return document


# init


def test_init_each_role_and_edition(tmp_path: Path) -> None:
    out = ok(
        "init", "--home", str(tmp_path / "se"), "--role", "ocs",
        "--fqdn", "SE.example.com", "--ip", "127.0.0.3",
    )  # fmt: skip
    assert out == (
        f"initialized ocs node se.example.com (127.0.0.3, standard edition) in "
        f"{tmp_path / 'se'}; store {tmp_path / 'se' / FILENAME}\n"
    )
    ok(
        "init", "--home", str(tmp_path / "fe"), "--role", "ocs", "--fqdn", "fe1.example.com",
        "--ip", "127.0.0.5", "--edition", "enterprise", "--pool-fqdn", "pool.example.com",
    )  # fmt: skip
    node = staged(str(tmp_path / "fe"))["node"]
    assert node == {
        "role": "ocs",
        "fqdn": "fe1.example.com",
        "ip": "127.0.0.5",
        "edition": "enterprise",
        "pool_fqdn": "pool.example.com",
    }
    init(tmp_path / "imp", "imp")
    document = staged(str(tmp_path / "imp"))
    assert document["listeners"] == {"tcp": 5060, "peer_auth": 5061, "server_auth": 5062}
    assert document["routing_mode"] == "basic"


def test_init_with_an_sqlite_url(tmp_path: Path) -> None:
    target = tmp_path / "db" / "imp1.db"
    init(tmp_path / "home", "imp", "--db", f"sqlite:///{target}")
    assert target.exists()
    config(str(tmp_path / "home"), "domain", "add", "example.com")
    assert config_json(str(tmp_path / "home"), "domain", "list") == ["example.com"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ("--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2",
             "--edition", "standard"),
            "--edition: IM and Presence nodes have no edition or pool — leave out --edition and "
            "--pool-fqdn (they belong to role ocs)",
        ),
        (
            ("--role", "ocs", "--fqdn", "fe1.example.com", "--ip", "127.0.0.2",
             "--edition", "enterprise"),
            "--pool-fqdn: an Enterprise Edition front end needs its pool FQDN — add --pool-fqdn "
            "pool.example.com",
        ),
        (
            ("--role", "ocs", "--fqdn", "ocs1", "--ip", "127.0.0.2"),
            "--fqdn: 'ocs1' is not a fully qualified domain name — give a name such as "
            "imp1.example.com",
        ),
        (
            ("--role", "ocs", "--fqdn", "ocs1.example.com", "--ip", "ocs1"),
            "--ip: 'ocs1' is not an IP address — give an address such as 192.0.2.10",
        ),
        (
            ("--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2",
             "--db", "postgresql://intrafed:s3cret@127.0.0.1:1/intrafed?bogus=1"),
            "--db: 'postgresql://intrafed:***@127.0.0.1:1/intrafed?bogus=1' is not a PostgreSQL "
            "URL — give postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ),
    ],
)  # fmt: skip
def test_init_refusals(tmp_path: Path, extra: tuple[str, ...], expected: str) -> None:
    assert refused("init", "--home", str(tmp_path / "h"), *extra) == expected
    assert not (tmp_path / "h").exists()


def test_init_refuses_an_existing_node(tmp_path: Path) -> None:
    init(tmp_path, "imp")
    line = refused(
        "init",
        "--home",
        str(tmp_path),
        "--role",
        "ocs",
        "--fqdn",
        "o.example.com",
        "--ip",
        "10.0.0.1",
    )
    assert line.startswith(f"--home: {tmp_path} already holds a node")


# config commands, each role's seed procedure


def test_domain_commands(ocs: str) -> None:
    assert (
        config(ocs, "domain", "add", "Example.ORG")
        == f"added domain example.org {applied_by(ocs)}\n"
    )
    assert config(ocs, "domain", "list") == "DOMAIN\nexample.com\nexample.org\n"
    assert config_json(ocs, "domain", "list") == ["example.com", "example.org"]
    assert (
        config(ocs, "domain", "remove", "example.org")
        == f"removed domain example.org {applied_by(ocs)}\n"
    )
    assert config_json(ocs, "domain", "list") == ["example.com"]


def test_connection_commands_follow_enable_port_and_configure_mtls(ocs: str) -> None:
    assert config(ocs, "connection", "list") == "(none)\n"
    out = config(ocs, "connection", "add", "--transport", "TCP", "--port", "5060")
    assert out == f"added connection TCP 5060 on All {applied_by(ocs, 'restart')}\n"
    config(ocs, "connection", "add", "--transport", "tls", "--port", "5061", "--ip", "All")
    config(ocs, "connection", "remove", "--transport", "TLS", "--port", "5061")
    config(ocs, "connection", "add", "--transport", "MTLS", "--port", "5061")
    config(ocs, "connection", "add", "--transport", "TCP", "--port", "5070", "--ip", "127.0.0.3")
    assert config(ocs, "connection", "list") == (
        "IP         TRANSPORT  PORT\n"
        "All        TCP        5060\n"
        "All        MTLS       5061\n"
        "127.0.0.3  TCP        5070\n"
    )
    assert config_json(ocs, "connection", "list") == [
        {"transport": "TCP", "port": 5060, "ip": "All"},
        {"transport": "MTLS", "port": 5061, "ip": "All"},
        {"transport": "TCP", "port": 5070, "ip": "127.0.0.3"},
    ]


def test_route_commands_on_ocs(ocs: str) -> None:
    out = config(
        ocs, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port", "5061",
        "--fqdn", "imp1.example.com", "--no-phone-uri", "--no-replace-host",
    )  # fmt: skip
    assert out == f"added static route example.com → TLS imp1.example.com:5061 {applied_by(ocs)}\n"
    config(
        ocs, "route", "add", "--domain", "*.example.org", "--transport", "TCP", "--port", "5060",
        "--ip", "127.0.0.2", "--phone-uri", "--replace-host",
    )  # fmt: skip
    assert config(ocs, "route", "list") == (
        "MATCHING URI   TRANSPORT  NEXT HOP          PORT  PHONE URI  REPLACE HOST\n"
        "example.com    TLS        imp1.example.com  5061  no         no\n"
        "*.example.org  TCP        127.0.0.2         5060  yes        yes\n"
    )
    assert config_json(ocs, "route", "list") == [
        {"domain": "example.com", "transport": "TLS", "port": 5061, "fqdn": "imp1.example.com",
         "phone_uri": False, "replace_host": False, "priority": 1},
        {"domain": "*.example.org", "transport": "TCP", "port": 5060, "ip": "127.0.0.2",
         "phone_uri": True, "replace_host": True, "priority": 1},
    ]  # fmt: skip
    out = config(
        ocs, "route", "remove", "--domain", "example.com", "--transport", "TLS", "--port", "5061",
        "--fqdn", "imp1.example.com",
    )  # fmt: skip
    assert out == f"removed static route example.com {applied_by(ocs)}\n"
    config(ocs, "route", "remove", "--domain", "*.example.org")
    assert config_json(ocs, "route", "list") == []


def test_route_commands_on_imp_with_a_backup(imp: str) -> None:
    config(
        imp, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port", "5061",
        "--fqdn", "ocs1.example.com",
    )  # fmt: skip
    config(
        imp, "route", "add", "--domain", "example.com", "--transport", "TCP", "--port", "5060",
        "--ip", "127.0.0.4", "--priority", "2",
    )  # fmt: skip
    assert config(imp, "route", "list") == (
        "DESTINATION  TRANSPORT  NEXT HOP          PORT  PRIORITY\n"
        "example.com  TLS        ocs1.example.com  5061  1\n"
        "example.com  TCP        127.0.0.4         5060  2\n"
    )
    config(imp, "route", "remove", "--domain", "example.com", "--priority", "2")
    assert [route["priority"] for route in config_json(imp, "route", "list")] == [1]


def test_hostauth_commands_with_the_seeds_flags(ocs: str) -> None:
    out = config(ocs, "hostauth", "add", "--fqdn", "imp1.example.com")
    assert out == f"added host authorization imp1.example.com {applied_by(ocs)}\n"
    config(ocs, "hostauth", "add", "--ip", "127.0.0.2")
    config(
        ocs, "hostauth", "add", "--ip", "127.0.0.9", "--outbound-only",
        "--no-throttle-as-server", "--no-treat-as-authenticated",
    )  # fmt: skip
    assert config(ocs, "hostauth", "list") == (
        "HOST              OUTBOUND ONLY  THROTTLE AS SERVER  TREAT AS AUTHENTICATED\n"
        "imp1.example.com  no             yes                 yes\n"
        "127.0.0.2         no             yes                 yes\n"
        "127.0.0.9         yes            no                  no\n"
    )
    assert config_json(ocs, "hostauth", "list")[1] == {
        "ip": "127.0.0.2",
        "outbound_only": False,
        "throttle_as_server": True,
        "treat_as_authenticated": True,
    }
    out = config(ocs, "hostauth", "remove", "--ip", "127.0.0.9")
    assert out == f"removed host authorization 127.0.0.9 {applied_by(ocs)}\n"
    config(ocs, "hostauth", "remove", "--fqdn", "IMP1.example.com")
    assert config_json(ocs, "hostauth", "list") == [
        {"ip": "127.0.0.2", "outbound_only": False, "throttle_as_server": True,
         "treat_as_authenticated": True},
    ]  # fmt: skip


def test_listener_set_moves_server_auth_off_peer_auth(imp: str) -> None:
    assert config(imp, "listener", "set", "--server-auth", "5063") == (
        "listeners: TCP 5060, Peer Auth 5061 (MTLS), Server Auth 5063 (TLS) "
        f"{applied_by(imp, 'restart')}\n"
    )
    config(imp, "listener", "set", "--tcp", "5070", "--peer-auth", "5062", "--server-auth", "5061")
    assert staged(imp)["listeners"] == {"tcp": 5070, "peer_auth": 5062, "server_auth": 5061}


def test_peer_subject_commands(imp: str) -> None:
    out = config(imp, "peer-subject", "add", "OCS1.example.com")
    assert out == f"added TLS peer subject ocs1.example.com {applied_by(imp)}\n"
    config(imp, "peer-subject", "add", "pool.example.com")
    assert config(imp, "peer-subject", "list") == "SUBJECT\nocs1.example.com\npool.example.com\n"
    config(imp, "peer-subject", "remove", "ocs1.example.com")
    assert config_json(imp, "peer-subject", "list") == ["pool.example.com"]


def test_acl_commands(imp: str) -> None:
    assert (
        config(imp, "acl", "add", "--ip", "127.0.0.3")
        == f"added ACL entry 127.0.0.3 {applied_by(imp)}\n"
    )
    config(imp, "acl", "add", "--fqdn", "ocs1.example.com")
    assert config(imp, "acl", "list") == "HOST\n127.0.0.3\nocs1.example.com\n"
    config(imp, "acl", "remove", "--ip", "127.0.0.3")
    assert config_json(imp, "acl", "list") == [{"fqdn": "ocs1.example.com"}]


def test_routing_mode(imp: str) -> None:
    assert config(imp, "routing-mode", "advanced") == f"routing mode: advanced {applied_by(imp)}\n"
    assert staged(imp)["routing_mode"] == "advanced"
    config(imp, "routing-mode", "basic")
    assert staged(imp)["routing_mode"] == "basic"


def test_directory_commands(imp: str) -> None:
    out = config(imp, "directory", "add", "bob@example.com", "Carol@Example.com")
    assert out == f"added bob@example.com, Carol@Example.com to the directory {applied_by(imp)}\n"
    assert config(imp, "directory", "list") == "USER\nbob@example.com\nCarol@example.com\n"
    assert config(imp, "directory", "remove", "bob@example.com") == (
        f"removed bob@example.com from the directory {applied_by(imp)}\n"
    )
    assert config_json(imp, "directory", "list") == ["Carol@example.com"]
    assert staged(imp)["peer_directory"] == ["Carol@example.com"]
    assert "peer directory: 1 user(s)\n" in config(imp, "show")


def test_directory_import_from_a_file_json_or_an_ocs_home(
    imp: str, ocs: str, tmp_path: Path
) -> None:
    config(imp, "directory", "add", "old@example.com")
    listing = tmp_path / "ocs-users.txt"
    listing.write_text("# exported from ocs1\nbob@example.com\n\n  dave@example.com  # lab\n")
    assert (
        config(imp, "directory", "import", str(listing))
        == f"directory: 2 user(s) {applied_by(imp)}\n"
    )
    assert config_json(imp, "directory", "list") == ["bob@example.com", "dave@example.com"]
    config(ocs, "user", "add", "erin@example.com", "--password-file", "-", stdin="pw\n")
    config(ocs, "user", "add", "fred@example.com", "--password-file", "-", stdin="pw\n")
    config(ocs, "user", "disable", "fred@example.com")
    config(imp, "directory", "import", "-", stdin=config(ocs, "user", "list", "--json"))
    assert config_json(imp, "directory", "list") == ["erin@example.com", "fred@example.com"]
    config(imp, "directory", "import", "-", stdin='["gina@example.com"]')
    assert config_json(imp, "directory", "list") == ["gina@example.com"]
    config(imp, "directory", "import", "--from-home", ocs)
    assert config_json(imp, "directory", "list") == ["erin@example.com", "fred@example.com"]
    config(imp, "directory", "import", "-", stdin="# nobody\n")
    assert "peer_directory" not in staged(imp)


def test_directory_import_refusals_change_nothing(imp: str, ocs: str, tmp_path: Path) -> None:
    config(imp, "directory", "add", "bob@example.com")
    before = staged(imp)
    listing = tmp_path / "users.txt"
    listing.write_text("bob@example.com\n")
    for arguments, expected in (
        (
            ("--from-home", imp),
            f"--from-home: {imp} is an imp node; the directory lists the OCS side's users — "
            "give an OCS node's home",
        ),
        (
            (str(listing), "--from-home", ocs),
            "directory: name one source — give either FILE or --from-home OCS_HOME",
        ),
        (("-",), "directory: 'carol' is not user@domain — give an address such as "
         "alice@example.com"),
    ):  # fmt: skip
        line = refused("config", "directory", "import", *arguments, "--home", imp, stdin="carol")
        assert line == expected
    assert refused(
        "config", "directory", "import", "-", "--home", imp, stdin='[{"user": "bob"}]'
    ) == ("FILE: a JSON entry has no address — give USER@DOMAIN strings or aor entries")
    assert refused("config", "directory", "import", "-", "--home", imp, stdin="[1,").startswith(
        "FILE: is not a JSON list ("
    )
    assert staged(imp) == before


def test_user_commands_keep_no_password(imp: str, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("correct horse\n")
    out = config(imp, "user", "add", "alice@example.com", "--password-file", str(password_file))
    assert out == f"added user alice@example.com {applied_by(imp)}\n"
    config(imp, "user", "add", "carol@example.com", "--password-file", "-", stdin="battery\n")
    config(imp, "user", "disable", "carol@example.com")
    assert config(imp, "user", "list") == (
        "USER               ENABLED  PASSWORD SET\n"
        "alice@example.com  yes      yes\n"
        "carol@example.com  no       yes\n"
    )
    assert config(imp, "user", "enable", "carol@example.com") == (
        f"enabled user carol@example.com {applied_by(imp)}\n"
    )
    config(imp, "user", "remove", "alice@example.com")
    assert config_json(imp, "user", "list") == [
        {"aor": "carol@example.com", "enabled": True, "password_set": True}
    ]
    database = b"".join(path.read_bytes() for path in Path(imp).glob(f"{FILENAME}*"))
    assert b"correct horse" not in database
    assert b"battery" not in database


def test_user_block_commands(ocs: str) -> None:
    config(ocs, "user", "add", "alice@example.com", "--password-file", "-", stdin="pw\n")
    out = config(ocs, "user", "block", "alice@example.com", "mallory@example.com")
    assert out == f"alice@example.com blocks mallory@example.com {applied_by(ocs)}\n"
    config(ocs, "user", "block", "alice@example.com", "eve@example.net")
    assert tomllib.loads(config(ocs, "export"))["users"][0]["blocked"] == [
        "mallory@example.com",
        "eve@example.net",
    ]
    out = config(ocs, "user", "unblock", "alice@example.com", "mallory@example.com")
    assert out == f"alice@example.com unblocks mallory@example.com {applied_by(ocs)}\n"
    users = staged(ocs)["users"]
    assert isinstance(users, list)
    assert users[0]["blocked"] == ["eve@example.net"]
    assert refused(
        "config", "user", "unblock", "alice@example.com", "bob@example.com", "--home", ocs
    ) == (
        "user: alice@example.com does not block bob@example.com — see the user's blocked list "
        "in intrafed config export"
    )


def test_hosts_commands(ocs: str) -> None:
    out = config(ocs, "hosts", "add", "IMP1.example.com", "127.0.0.2")
    assert out == f"added host imp1.example.com 127.0.0.2 {applied_by(ocs)}\n"
    config(ocs, "hosts", "add", "imp2.example.com", "127.0.0.4")
    assert config(ocs, "hosts", "list") == (
        "FQDN              ADDRESS\nimp1.example.com  127.0.0.2\nimp2.example.com  127.0.0.4\n"
    )
    config(ocs, "hosts", "remove", "imp1.example.com", "127.0.0.2")
    config(ocs, "hosts", "remove", "imp2.example.com")
    assert config_json(ocs, "hosts", "list") == []


def test_fips(ocs: str) -> None:
    assert config(ocs, "fips", "off") == f"FIPS policy: off {applied_by(ocs)}\n"
    assert staged(ocs)["fips"] is False
    config(ocs, "fips", "on")
    assert staged(ocs)["fips"] is True


def test_tls_profile(ocs: str) -> None:
    assert config(ocs, "tls-profile", "Legacy-TLS1") == (
        f"TLS profile: legacy-tls1 {applied_by(ocs)}\n"
    )
    assert staged(ocs)["tls_profile"] == "legacy-tls1"
    config(ocs, "tls-profile", "default")
    assert staged(ocs)["tls_profile"] == "default"


def test_rate_limits_change_one_value_at_a_time_and_refuse_a_burst_below_the_rate(
    ocs: str,
) -> None:
    assert "rate_limits" not in staged(ocs)
    assert config(ocs, "rate-limit", "set", "--client-rate", "50") == (
        "rate limits: client 50/s (burst 400) per address, "
        f"server 50000/s (burst 100000) per trusted peer {applied_by(ocs)}\n"
    )
    assert staged(ocs)["rate_limits"] == {
        "client": {"rate": 50, "burst": 400},
        "server": {"rate": 50000, "burst": 100000},
    }
    line = refused("config", "rate-limit", "set", "--home", ocs, "--server-burst", "10")
    assert line == "burst: 10 is below the rate (50000/s) — give a burst of at least 50000"


def test_digest_algorithms_in_order_of_preference(ocs: str) -> None:
    assert "digest_algorithms" not in staged(ocs)
    assert (
        config(ocs, "digest", "md5", "SHA-256")
        == f"digest algorithms: MD5, SHA-256 {applied_by(ocs)}\n"
    )
    assert staged(ocs)["digest_algorithms"] == ["MD5", "SHA-256"]
    line = refused("config", "digest", "--home", ocs, "SHA-1")
    assert line == (
        "digest: SHA-1 is not a list of distinct digest algorithms — "
        "give SHA-256 and/or MD5, most preferred first"
    )


def test_show_summarizes_and_says_what_a_restart_would_change(ocs: str) -> None:
    config(ocs, "connection", "add", "--transport", "MTLS", "--port", "5061")
    config(ocs, "hostauth", "add", "--fqdn", "imp1.example.com")
    assert config(ocs, "show") == (
        "ocs node ocs1.example.com (127.0.0.3), Standard Edition, staged configuration\n"
        "domains: example.com\n"
        "FIPS policy: on\n"
        "rate limits: client 200/s (burst 400) per address, "
        "server 50000/s (burst 100000) per trusted peer\n"
        "digest algorithms: SHA-256, MD5\n"
        "metrics: off\n"
        "connections:\n"
        "  IP   TRANSPORT  PORT\n"
        "  All  MTLS       5061\n"
        "static routes:\n"
        "  (none)\n"
        "host authorization:\n"
        "  HOST              OUTBOUND ONLY  THROTTLE AS SERVER  TREAT AS AUTHENTICATED\n"
        "  imp1.example.com  no             yes                 yes\n"
        "users:\n"
        "  (none)\n"
        "hosts:\n"
        "  (none)\n"
        "restart pending: domains: added example.com; connections: added MTLS All:5061; "
        "host_authorizations: added imp1.example.com\n"
    )
    running = config(ocs, "show", "--running")
    assert "staged configuration" not in running
    assert "running configuration\ndomains: (none)\n" in running
    assert running.endswith("host_authorizations: added imp1.example.com\n")
    assert staged(ocs)["connections"] == [{"transport": "MTLS", "port": 5061, "ip": "All"}]
    running_document = json.loads(config(ocs, "show", "--running", "--json"))
    assert running_document["domains"] == []


def test_show_on_imp_and_with_nothing_pending(imp: str) -> None:
    config(imp, "peer-subject", "add", "ocs1.example.com")
    out = config(imp, "show", "--staged")
    assert "listeners: TCP 5060, Peer Auth 5061 (MTLS), Server Auth 5062 (TLS)\n" in out
    assert "routing mode: basic\nTLS peer subjects: ocs1.example.com\n" in out
    assert "incoming ACL:\n  (none)\n" in out
    with sqlite3.connect(Path(imp) / FILENAME) as db:
        db.execute(
            "UPDATE config SET document = (SELECT document FROM config WHERE kind = 'staged') "
            "WHERE kind = 'running'"
        )
    db.close()
    assert config(imp, "show").endswith("no reload or restart pending\n")


def test_export_and_import_in_process(ocs: str, tmp_path: Path) -> None:
    config(ocs, "connection", "add", "--transport", "TCP", "--port", "5060")
    text = config(ocs, "export")
    assert tomllib.loads(text)["connections"] == [{"transport": "TCP", "port": 5060, "ip": "All"}]
    target = tmp_path / "ocs1.toml"
    assert config(ocs, "export", "--file", str(target)) == (
        f"exported the staged configuration to {target}\n"
    )
    assert target.read_text() == text
    fresh = tmp_path / "fresh"
    init(fresh, "ocs")
    out = config(str(fresh), "import", "-", stdin=text)
    assert out == (
        "imported: domains: added example.com; connections: added TCP All:5060 "
        f"{applied_by(str(fresh), 'restart')}\n"
    )
    assert (
        config(str(fresh), "import", str(target))
        == f"imported: no change {applied_by(str(fresh), 'restart')}\n"
    )
    assert config(str(fresh), "export") == text


# refusals: each is one line on stderr, exit status 2, and changes nothing


OCS_REFUSALS = [
    (
        ("route", "add", "--domain", "example.com", "--transport", "TLS", "--port", "5061",
         "--ip", "127.0.0.2"),
        "--ip: TLS static routes must name the next hop by FQDN — the seed's 'Important' note "
        "— use --fqdn",
    ),
    (
        ("route", "add", "--domain", "example.com", "--transport", "TCP", "--port", "5060",
         "--fqdn", "imp1.example.com"),
        "--fqdn: TCP static routes name the next hop by IP address — use --ip",
    ),
    (
        ("route", "add", "--domain", "example.com", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9"),
        "--domain: a static route with the matching URI example.com already exists (next hop "
        "TLS imp1.example.com:5061); duplicate matching URIs are refused — change it instead: "
        "intrafed config route set --domain example.com",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9", "--priority", "2"),
        "--priority: this is an ocs node; --priority belongs to role imp — run it on an imp "
        "node's --home",
    ),
    (
        ("route", "add", "--domain", "example", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9"),
        "--domain: 'example' is not a domain — give a domain such as example.com",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "UDP", "--port", "5060",
         "--ip", "127.0.0.9"),
        "--transport: 'UDP' is not a route transport — use TCP or TLS",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "TCP", "--port", "0",
         "--ip", "127.0.0.9"),
        "--port: port 0 is outside 1-65535 — choose a port between 1 and 65535",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "TCP", "--port", "5060"),
        "--ip/--fqdn: a static route needs exactly one next hop — give either --ip (TCP) or "
        "--fqdn (TLS)",
    ),
    (
        ("route", "remove", "--domain", "example.org"),
        "route: a static route for example.org is not configured — see intrafed config route list",
    ),
    (
        ("route", "remove", "--domain", "example.com", "--fqdn", "imp2.example.com"),
        "route: the static route for example.com goes to TLS imp1.example.com:5061, not "
        "imp2.example.com — check intrafed config route list, or give only --domain",
    ),
    (
        ("hostauth", "add", "--ip", "0.0.0.0"),  # noqa: S104
        "--ip: 0.0.0.0 cannot be an authorized host (0.0.0.0 and multicast are refused) — give "
        "the peer node's own address",
    ),
    (
        ("hostauth", "add", "--ip", "224.0.0.5"),
        "--ip: 224.0.0.5 cannot be an authorized host (0.0.0.0 and multicast are refused) — "
        "give the peer node's own address",
    ),
    (
        ("hostauth", "add", "--fqdn", "imp1.example.com"),
        "hostauth: imp1.example.com is already configured — see intrafed config hostauth list; "
        "change it with intrafed config hostauth set",
    ),
    (
        ("hostauth", "add"),
        "--ip/--fqdn: a host authorization entry names one host — give either --fqdn or --ip "
        "(TLS peers need one entry of each)",
    ),
    (
        ("hostauth", "remove", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2"),
        "--ip/--fqdn: name one host — give either --fqdn or --ip",
    ),
    (
        ("hostauth", "remove", "--ip", "127.0.0.9"),
        "hostauth: host authorization for 127.0.0.9 is not configured — see intrafed config "
        "hostauth list",
    ),
    (
        ("connection", "add", "--transport", "TLS", "--port", "5061"),
        "connection: two connections listen on port 5061 — remove one of them, or use another "
        "--port",
    ),
    (
        ("connection", "add", "--transport", "TCP", "--port", "5061", "--ip", "127.0.0.3"),
        "connection: two connections listen on port 5061 — remove one of them, or use another "
        "--port",
    ),
    (
        ("connection", "add", "--transport", "TCP", "--port", "65536"),
        "--port: port 65536 is outside 1-65535 — choose a port between 1 and 65535",
    ),
    (
        ("connection", "add", "--transport", "SCTP", "--port", "5060"),
        "--transport: 'SCTP' is not a connection transport — use TCP, TLS or MTLS",
    ),
    (
        ("connection", "remove", "--transport", "TLS", "--port", "5061"),
        "connection: TLS 5061 on All is not configured — see intrafed config connection list",
    ),
    (("domain", "add", "not_a_domain"), "domain: 'not_a_domain' is not a domain — give a "
     "domain such as example.com"),
    (("domain", "add", "192.0.2.1"), "domain: '192.0.2.1' is not a domain — give a domain "
     "such as example.com"),
    (
        ("domain", "add", "example.com"),
        "domain: example.com is already configured — see intrafed config domain list; remove "
        "it first to change it",
    ),
    (
        ("domain", "remove", "example.net"),
        "domain: example.net is not configured — see intrafed config domain list",
    ),
    (
        ("domain", "remove", "example.com"),
        "domain: 1 user(s) are homed in example.com, e.g. bob@example.com — remove them first: "
        "intrafed config user remove bob@example.com",
    ),
    (
        ("user", "add", "eve@example.net", "--password-file", "-"),
        "user: eve@example.net is in example.net, which this node does not serve — add the "
        "domain first: intrafed config domain add example.net",
    ),
    (
        ("user", "add", "bob@example.com", "--password-file", "-"),
        "user: bob@example.com is already configured — see intrafed config user list; change "
        "it with intrafed config user set",
    ),
    (
        ("user", "add", "eve", "--password-file", "-"),
        "USER@DOMAIN: 'eve' is not user@domain — give an address such as alice@example.com",
    ),
    (("user", "remove", "eve@example.com"),
     "user: eve@example.com is not configured — see intrafed config user list"),
    (("user", "enable", "eve@example.com"),
     "user: eve@example.com is not configured — see intrafed config user list"),
    (("user", "disable", "eve@example.com"),
     "user: eve@example.com is not configured — see intrafed config user list"),
    (
        ("hosts", "add", "imp1.example.com", "127.0.0.5"),
        "hosts: imp1.example.com is already configured — see intrafed config hosts list; "
        "change it with intrafed config hosts set",
    ),
    (("hosts", "add", "imp2", "127.0.0.5"), "FQDN: 'imp2' is not a fully qualified domain "
     "name — give a name such as imp1.example.com"),
    (("hosts", "add", "imp2.example.com", "imp2"), "ADDR: 'imp2' is not an IP address — give "
     "an address such as 192.0.2.10"),
    (("hosts", "remove", "imp1.example.com", "127.0.0.9"),
     "hosts: imp1.example.com 127.0.0.9 is not configured — see intrafed config hosts list"),
    (("listener", "set", "--tcp", "5070"),
     "listener: this is an ocs node; listener belongs to role imp — run it on an imp "
     "node's --home"),
    (("peer-subject", "add", "imp1.example.com"),
     "peer-subject: this is an ocs node; peer-subject belongs to role imp — run it on an imp "
     "node's --home"),
    (("peer-subject", "remove", "imp1.example.com"), "peer-subject: this is an ocs node; "
     "peer-subject belongs to role imp — run it on an imp node's --home"),
    (("peer-subject", "list"), "peer-subject: this is an ocs node; peer-subject belongs to "
     "role imp — run it on an imp node's --home"),
    (("acl", "add", "--ip", "127.0.0.2"), "acl: this is an ocs node; acl belongs to role imp "
     "— run it on an imp node's --home"),
    (("acl", "remove", "--ip", "127.0.0.2"), "acl: this is an ocs node; acl belongs to role "
     "imp — run it on an imp node's --home"),
    (("acl", "list"), "acl: this is an ocs node; acl belongs to role imp — run it on an imp "
     "node's --home"),
    (("routing-mode", "advanced"), "routing-mode: this is an ocs node; routing-mode belongs "
     "to role imp — run it on an imp node's --home"),
    (("directory", "add", "bob@example.com"), "directory: this is an ocs node; directory "
     "belongs to role imp — run it on an imp node's --home"),
    (("directory", "list"), "directory: this is an ocs node; directory belongs to role imp — "
     "run it on an imp node's --home"),
]  # fmt: skip

IMP_REFUSALS = [
    (
        ("listener", "set", "--server-auth", "5061"),
        "--server-auth: Server Auth and Peer Auth both use port 5061 — move Server Auth to "
        "another port, e.g. --server-auth 5063",
    ),
    (
        ("listener", "set", "--peer-auth", "5063", "--server-auth", "5063"),
        "--server-auth: Server Auth and Peer Auth both use port 5063 — move Server Auth to "
        "another port, e.g. --server-auth 5062",
    ),
    (
        ("listener", "set", "--tcp", "5062"),
        "--tcp: port 5062 is already a TLS listener — give the TCP listener its own port",
    ),
    (
        ("listener", "set", "--peer-auth", "70000"),
        "--peer-auth: port 70000 is outside 1-65535 — choose a port between 1 and 65535",
    ),
    (("listener", "set"), "listener: no port given — give --tcp, --peer-auth and/or --server-auth"),
    (
        ("route", "add", "--domain", "example.com", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9"),
        "--domain: a static route with the matching URI example.com at priority 1 already "
        "exists (next hop TLS ocs1.example.com:5061); duplicate matching URIs are refused — "
        "change it instead: intrafed config route set --domain example.com (or give a backup "
        "route a higher --priority)",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9", "--phone-uri"),
        "--phone-uri: this is an imp node; --phone-uri belongs to role ocs — run it on an ocs "
        "node's --home",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9", "--replace-host"),
        "--replace-host: this is an imp node; --replace-host belongs to role ocs — run it on "
        "an ocs node's --home",
    ),
    (
        ("route", "add", "--domain", "example.org", "--transport", "TCP", "--port", "5060",
         "--ip", "127.0.0.9", "--priority", "0"),
        "--priority: priority 0 is below 1 — use 1 for the primary route, 2 and up for backups",
    ),
    (
        ("route", "remove", "--domain", "example.com", "--priority", "2"),
        "route: a static route for example.com at priority 2 is not configured — see intrafed "
        "config route list",
    ),
    (("peer-subject", "add", "ocs1.example.com"), "peer-subject: ocs1.example.com is already "
     "configured — see intrafed config peer-subject list; change it with intrafed config "
     "peer-subject set"),
    (("peer-subject", "add", "ocs1"), "peer-subject: 'ocs1' is not a fully qualified domain "
     "name — give a name such as imp1.example.com"),
    (("peer-subject", "remove", "ocs2.example.com"), "peer-subject: TLS peer subject "
     "ocs2.example.com is not configured — see intrafed config peer-subject list"),
    (("acl", "add", "--ip", "127.0.0.3"), "acl: 127.0.0.3 is already configured — see "
     "intrafed config acl list; change it with intrafed config acl set"),
    (("acl", "remove", "--fqdn", "ocs2.example.com"), "acl: incoming ACL entry for "
     "ocs2.example.com is not configured — see intrafed config acl list"),
    (("acl", "remove"), "--ip/--fqdn: name one host — give either --fqdn or --ip"),
    (("connection", "add", "--transport", "TCP", "--port", "5060"), "connection: this is an "
     "imp node; connection belongs to role ocs — run it on an ocs node's --home"),
    (("connection", "remove", "--transport", "TCP", "--port", "5060"), "connection: this is "
     "an imp node; connection belongs to role ocs — run it on an ocs node's --home"),
    (("connection", "list"), "connection: this is an imp node; connection belongs to role "
     "ocs — run it on an ocs node's --home"),
    (("hostauth", "add", "--ip", "127.0.0.3"), "hostauth: this is an imp node; hostauth "
     "belongs to role ocs — run it on an ocs node's --home"),
    (("hostauth", "remove", "--ip", "127.0.0.3"), "hostauth: this is an imp node; hostauth "
     "belongs to role ocs — run it on an ocs node's --home"),
    (("hostauth", "list"), "hostauth: this is an imp node; hostauth belongs to role ocs — "
     "run it on an ocs node's --home"),
    (("directory", "add", "bob@example.com", "bob@example.com"), "directory: bob@example.com "
     "is listed twice — remove the duplicate"),
    (("directory", "add", "bob"), "directory: 'bob' is not user@domain — give an address such "
     "as alice@example.com"),
    (("directory", "remove", "eve@example.com"), "directory: eve@example.com is not configured "
     "— see intrafed config directory list"),
    (("directory", "import"), "directory: name one source — give either FILE or --from-home "
     "OCS_HOME"),
]  # fmt: skip


def _seed_ocs(home: str) -> None:
    config(home, "connection", "add", "--transport", "MTLS", "--port", "5061")
    config(
        home, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port", "5061",
        "--fqdn", "imp1.example.com",
    )  # fmt: skip
    config(home, "hostauth", "add", "--fqdn", "imp1.example.com")
    config(home, "user", "add", "bob@example.com", "--password-file", "-", stdin="pw\n")
    config(home, "hosts", "add", "imp1.example.com", "127.0.0.2")


def _seed_imp(home: str) -> None:
    config(
        home, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port", "5061",
        "--fqdn", "ocs1.example.com",
    )  # fmt: skip
    config(home, "peer-subject", "add", "ocs1.example.com")
    config(home, "acl", "add", "--ip", "127.0.0.3")


@pytest.mark.parametrize(("arguments", "expected"), OCS_REFUSALS)
def test_ocs_refusals(ocs: str, arguments: tuple[str, ...], expected: str) -> None:
    _seed_ocs(ocs)
    before = staged(ocs)
    assert refused("config", *arguments, "--home", ocs, stdin="pw\n") == expected
    assert staged(ocs) == before


@pytest.mark.parametrize(("arguments", "expected"), IMP_REFUSALS)
def test_imp_refusals(imp: str, arguments: tuple[str, ...], expected: str) -> None:
    _seed_imp(imp)
    before = staged(imp)
    assert refused("config", *arguments, "--home", imp) == expected
    assert staged(imp) == before


@pytest.mark.parametrize(
    ("tcp", "peer_auth"), [("5060", "5063"), ("5063", "5062"), ("5062", "5064")]
)
def test_a_listener_clash_never_suggests_a_port_in_use(imp: str, tcp: str, peer_auth: str) -> None:
    config(imp, "listener", "set", "--server-auth", "5099")
    config(imp, "listener", "set", "--tcp", tcp, "--peer-auth", peer_auth)
    line = refused("config", "listener", "set", "--server-auth", peer_auth, "--home", imp)
    suggested = line.rpartition("--server-auth ")[2]
    assert suggested.isdigit()
    assert suggested not in (tcp, peer_auth)
    config(imp, "listener", "set", "--server-auth", suggested)


def test_empty_password_is_refused(ocs: str, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    line = refused(
        "config", "user", "add", "bob@example.com", "--password-file", str(tmp_path / "empty"),
        "--home", ocs,
    )  # fmt: skip
    assert line == "--password-file: the password is empty — write it in the file"


def test_unreadable_inputs_and_unwritable_outputs_are_refused(ocs: str, tmp_path: Path) -> None:
    (tmp_path / "latin1").write_bytes("pässword".encode("latin-1"))
    line = refused(
        "config", "user", "add", "bob@example.com", "--password-file", str(tmp_path / "latin1"),
        "--home", ocs,
    )  # fmt: skip
    assert line.startswith("--password-file: is not UTF-8 text")
    target = tmp_path / "missing" / "ocs1.toml"
    line = refused("config", "export", "--file", str(target), "--home", ocs)
    assert (
        line == f"--file: cannot write {target}: No such file or directory — choose a writable path"
    )


def test_a_directory_that_is_not_a_home_is_refused(tmp_path: Path) -> None:
    line = refused("config", "domain", "list", "--home", str(tmp_path))
    assert line == (
        f"--home: {tmp_path} is not an intrafed home (no {FILENAME}) — run: intrafed init "
        f"--home {tmp_path} --role ocs|imp --fqdn FQDN --ip ADDR"
    )


def test_import_refusals_change_nothing(ocs: str, tmp_path: Path) -> None:
    _seed_ocs(ocs)
    before = config(ocs, "export")
    cases = {
        "tls route by ip": (
            before.replace('fqdn = "imp1.example.com"\nphone_uri', 'ip = "127.0.0.2"\nphone_uri'),
            "routes[0] --ip: TLS static routes must name the next hop by FQDN",
        ),
        "other node": (
            before.replace('fqdn = "ocs1.example.com"', 'fqdn = "ocs2.example.com"'),
            "node: the document is for ocs2.example.com (ocs, 127.0.0.3), this home is "
            "ocs1.example.com (ocs, 127.0.0.3)",
        ),
        "imp setting": (
            before.replace("fips = true", 'fips = true\nrouting_mode = "advanced"'),
            "routing_mode: belongs to role imp; this document is for an ocs node",
        ),
        "syntax": (before + "[[routes]\n", "TOML: "),
        "not utf-8": (b"\xff\xfe".decode("latin-1"), "FILE: is not UTF-8 text"),
    }
    for name, (text, expected) in cases.items():
        data = text.encode("latin-1") if name == "not utf-8" else text.encode()
        assert refused("config", "import", "-", "--home", ocs, stdin=data).startswith(expected), (
            name
        )
    assert config(ocs, "export") == before


def test_every_option_has_help_and_shows_its_default() -> None:
    def commands(command: click.Command, path: str) -> list[tuple[str, click.Command]]:
        if isinstance(command, click.Group):
            return [
                found
                for name, child in command.commands.items()
                for found in commands(child, f"{path} {name}")
            ]
        return [(path, command)]

    found = [("init", init_command), *commands(config_group, "config")]
    assert len(found) == 52
    for path, command in found:
        assert command.help, path
        names = [p.name for p in command.params]
        assert "home" in names, path
        if path.endswith(" list"):
            assert "as_json" in names, path
        options = [p for p in command.params if isinstance(p, click.Option)]
        assert all(option.help for option in options), path
        defaults = [
            option
            for option in options
            if (isinstance(option.default, int | str) and option.default is not False)
            or (option.secondary_opts and isinstance(option.default, bool))
            or isinstance(option.show_default, str)
        ]
        text = " ".join(invoke(*path.split(), "--help").stdout.split())
        assert text.count("[default: ") == len(defaults), path


# real processes on real SQLite files


def intrafed(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONWARNINGS": "error"}
    environment.pop("INTRAFED_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "intrafed", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        timeout=30,
        check=False,
    )


def test_real_processes_export_import_export_gives_the_same_document(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    identity = ("--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2")
    steps = [
        ("init", "--home", str(first), *identity),
        ("config", "domain", "add", "example.com", "--home", str(first)),
        ("config", "listener", "set", "--server-auth", "5063", "--home", str(first)),
        ("config", "route", "add", "--domain", "example.com", "--transport", "TLS", "--port",
         "5061", "--fqdn", "ocs1.example.com", "--home", str(first)),
        ("config", "peer-subject", "add", "ocs1.example.com", "--home", str(first)),
        ("config", "acl", "add", "--ip", "127.0.0.3", "--home", str(first)),
        ("config", "routing-mode", "advanced", "--home", str(first)),
        ("config", "directory", "add", "bob@example.com", "carol@example.com", "--home",
         str(first)),
        ("config", "hosts", "add", "ocs1.example.com", "127.0.0.3", "--home", str(first)),
    ]  # fmt: skip
    for step in steps:
        done = intrafed(*step)
        assert (done.returncode, done.stderr) == (0, ""), step
    done = intrafed(
        "config", "user", "add", "alice@example.com", "--password-file", "-", "--home", str(first),
        stdin="pw\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    exported = intrafed("config", "export", "--home", str(first))
    assert exported.returncode == 0
    assert intrafed("init", "--home", str(second), *identity).returncode == 0
    document = tmp_path / "imp1.toml"
    document.write_text(exported.stdout)
    imported = intrafed("config", "import", str(document), "--home", str(second))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("imported: domains: added example.com; routes: added")
    again = intrafed("config", "export", "--home", str(second))
    assert again.stdout == exported.stdout
    assert tomllib.loads(again.stdout)["users"][0]["aor"] == "alice@example.com"
    assert tomllib.loads(again.stdout)["peer_directory"] == ["bob@example.com", "carol@example.com"]
    with sqlite3.connect(second / FILENAME) as db:
        rows = dict(db.execute("SELECT kind, document FROM config").fetchall())
    db.close()
    assert json.loads(rows["staged"])["routing_mode"] == "advanced"
    assert json.loads(rows["running"])["routing_mode"] == "basic"


def test_real_processes_refuse_with_one_line_and_invalid_import_changes_nothing(
    tmp_path: Path,
) -> None:
    home = str(tmp_path / "ocs1")
    done = intrafed("init", "--home", home, "--role", "ocs", "--fqdn", "ocs1.example.com",
                    "--ip", "127.0.0.3")  # fmt: skip
    assert done.returncode == 0
    done = intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
                    "--port", "5061", "--ip", "127.0.0.2", "--home", home)  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "--ip: TLS static routes must name the next hop by FQDN — the seed's 'Important' note "
        "— use --fqdn\n"
    )
    done = intrafed("config", "peer-subject", "add", "imp1.example.com", "--home", home)
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "belongs to role imp" in done.stderr
    done = intrafed("init", "--home", str(tmp_path / "imp1"), "--role", "imp", "--fqdn",
                    "imp1.example.com", "--ip", "127.0.0.2", "--db",
                    "postgresql://intrafed:s3cret@127.0.0.1:1/intrafed")  # fmt: skip
    assert done.returncode == 2
    assert not (tmp_path / "imp1").exists()
    assert done.stderr.startswith(
        "--db: cannot connect to PostgreSQL at postgresql://intrafed:***@127.0.0.1:1/intrafed ("
    )
    assert "s3cret" not in done.stderr
    assert intrafed("config", "domain", "add", "example.com", "--home", home).returncode == 0
    before = intrafed("config", "export", "--home", home).stdout
    bad = tmp_path / "bad.toml"
    document = tomllib.loads(before)
    document["domains"].append("example.org")
    document["users"].append({"aor": "eve@example.net", "enabled": True})
    bad.write_text(tomli_w.dumps(document))
    done = intrafed("config", "import", str(bad), "--home", home)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("user: eve@example.net is in example.net, which this node")
    assert intrafed("config", "export", "--home", home).stdout == before
    show = intrafed("config", "show", "--home", home)
    assert show.returncode == 0
    assert show.stdout.endswith("reload pending: domains: added example.com\n")
