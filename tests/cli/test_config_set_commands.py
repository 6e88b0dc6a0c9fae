"""``intrafed config … set``: routes and entries changed in place (keeping their place in
their lists) instead of removed and added again, refused by the same rules and with the
same messages as ``add``, one staged edit each, with the truthful reload/restart note."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_config_commands import applied_by, config, config_json, init, ok, refused


@pytest.fixture
def ocs_home(tmp_path: Path) -> str:
    home = tmp_path / "ocs1"
    init(home, "ocs")
    ok("config", "domain", "add", "--home", str(home), "example.com")
    return str(home)


@pytest.fixture
def imp_home(tmp_path: Path) -> str:
    home = tmp_path / "imp1"
    init(home, "imp")
    ok("config", "domain", "add", "--home", str(home), "example.com")
    return str(home)


def test_a_static_route_is_changed_in_place_instead_of_removed_and_added(ocs_home: str) -> None:
    home = ocs_home
    config(home, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port",
           "5061", "--fqdn", "imp1.example.com")  # fmt: skip
    config(home, "route", "add", "--domain", "example.org", "--transport", "TCP", "--port",
           "5060", "--ip", "127.0.0.2")  # fmt: skip
    out = config(home, "route", "set", "--domain", "EXAMPLE.com", "--port", "5063")
    assert out == (
        f"changed static route example.com → TLS imp1.example.com:5063 {applied_by(home)}\n"
    )
    config(home, "route", "set", "--domain", "example.com", "--transport", "TCP",
           "--ip", "127.0.0.2", "--port", "5060", "--phone-uri")  # fmt: skip
    routes = config_json(home, "route", "list")
    assert [route["domain"] for route in routes] == ["example.com", "example.org"]
    assert routes[0] == {
        "domain": "example.com", "transport": "TCP", "port": 5060, "ip": "127.0.0.2",
        "phone_uri": True, "replace_host": False, "priority": 1,
    }  # fmt: skip

    # The refusals of route add, word for word.
    assert refused("config", "route", "set", "--home", home, "--domain", "example.com",
                   "--transport", "TLS") == (
        "--ip: TLS static routes must name the next hop by FQDN — the seed's 'Important' note "
        "— use --fqdn"
    )  # fmt: skip
    assert refused("config", "route", "set", "--home", home, "--domain", "example.com",
                   "--port", "70000") == (
        "--port: port 70000 is outside 1-65535 — choose a port between 1 and 65535"
    )  # fmt: skip
    assert refused("config", "route", "set", "--home", home, "--domain", "example.com",
                   "--new-priority", "2") == (
        "--priority: this is an ocs node; --priority belongs to role imp — run it on an imp "
        "node's --home"
    )  # fmt: skip
    assert refused("config", "route", "set", "--home", home, "--domain", "example.net",
                   "--port", "5060") == (
        "route: a static route for example.net is not configured — see intrafed config route "
        "list"
    )  # fmt: skip
    assert refused("config", "route", "set", "--home", home, "--domain", "example.com") == (
        "route: nothing to change — give --transport, --port, --ip or --fqdn, --phone-uri, "
        "--replace-host and/or --new-priority"
    )
    assert config_json(home, "route", "list") == routes


def test_an_imp_backup_route_moves_to_another_priority_in_place(imp_home: str) -> None:
    home = imp_home
    config(home, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port",
           "5061", "--fqdn", "ocs1.example.com")  # fmt: skip
    config(home, "route", "add", "--domain", "example.com", "--transport", "TCP", "--port",
           "5060", "--ip", "127.0.0.4", "--priority", "2")  # fmt: skip
    assert refused("config", "route", "set", "--home", home, "--domain", "example.com",
                   "--priority", "2", "--new-priority", "1") == (
        "--domain: a static route with the matching URI example.com at priority 1 already "
        "exists (next hop TLS ocs1.example.com:5061); duplicate matching URIs are refused — "
        "change it instead: intrafed config route set --domain example.com (or give a backup "
        "route a higher --priority)"
    )  # fmt: skip
    config(home, "route", "set", "--domain", "example.com", "--priority", "2",
           "--new-priority", "3", "--fqdn", "ocs2.example.com", "--transport", "TLS")  # fmt: skip
    assert config(home, "route", "list") == (
        "DESTINATION  TRANSPORT  NEXT HOP          PORT  PRIORITY\n"
        "example.com  TLS        ocs1.example.com  5061  1\n"
        "example.com  TLS        ocs2.example.com  5060  3\n"
    )


def test_host_authorization_flags_and_host_are_changed_in_place(ocs_home: str) -> None:
    home = ocs_home
    config(home, "hostauth", "add", "--fqdn", "imp1.example.com")
    config(home, "hostauth", "add", "--ip", "127.0.0.2")
    out = config(home, "hostauth", "set", "--fqdn", "IMP1.example.com", "--outbound-only",
                 "--no-treat-as-authenticated")  # fmt: skip
    assert out == f"changed host authorization imp1.example.com {applied_by(home)}\n"
    config(home, "hostauth", "set", "--ip", "127.0.0.2", "--new-ip", "127.0.0.5")
    assert config(home, "hostauth", "list") == (
        "HOST              OUTBOUND ONLY  THROTTLE AS SERVER  TREAT AS AUTHENTICATED\n"
        "imp1.example.com  yes            yes                 no\n"
        "127.0.0.5         no             yes                 yes\n"
    )
    assert refused("config", "hostauth", "set", "--home", home, "--ip", "127.0.0.5",
                   "--new-ip", "224.0.0.5") == (
        "--ip: 224.0.0.5 cannot be an authorized host (0.0.0.0 and multicast are refused) — "
        "give the peer node's own address"
    )  # fmt: skip
    assert refused("config", "hostauth", "set", "--home", home, "--ip", "127.0.0.5",
                   "--new-fqdn", "imp1.example.com") == (
        "hostauth: imp1.example.com is already configured — see intrafed config hostauth list; "
        "change it with intrafed config hostauth set"
    )  # fmt: skip
    assert refused("config", "hostauth", "set", "--home", home, "--ip", "127.0.0.9",
                   "--outbound-only") == (
        "hostauth: host authorization for 127.0.0.9 is not configured — see intrafed config "
        "hostauth list"
    )  # fmt: skip


def test_a_connection_is_switched_in_place_and_says_restart(ocs_home: str) -> None:
    home = ocs_home
    config(home, "connection", "add", "--transport", "TCP", "--port", "5060")
    config(home, "connection", "add", "--transport", "TLS", "--port", "5061")
    out = config(home, "connection", "set", "--transport", "tls", "--port", "5061",
                 "--new-transport", "MTLS")  # fmt: skip
    assert out == (
        f"changed connection TLS 5061 on All to MTLS 5061 on All {applied_by(home, 'restart')}\n"
    )
    assert config_json(home, "connection", "list") == [
        {"transport": "TCP", "port": 5060, "ip": "All"},
        {"transport": "MTLS", "port": 5061, "ip": "All"},
    ]
    assert refused("config", "connection", "set", "--home", home, "--transport", "MTLS",
                   "--port", "5061", "--new-port", "5060") == (
        "connection: two connections listen on port 5060 — remove one of them, or use another "
        "--port"
    )  # fmt: skip


def test_imp_peer_subjects_acl_entries_hosts_and_passwords_are_changed_in_place(
    imp_home: str,
) -> None:
    home = imp_home
    config(home, "peer-subject", "add", "ocs1.example.com")
    config(home, "peer-subject", "add", "pool1.example.com")
    config(home, "peer-subject", "set", "ocs1.example.com", "--new-name", "OCS2.example.com")
    assert config_json(home, "peer-subject", "list") == ["ocs2.example.com", "pool1.example.com"]
    assert refused("config", "peer-subject", "set", "--home", home, "ocs2.example.com",
                   "--new-name", "ocs2") == (
        "peer-subject: 'ocs2' is not a fully qualified domain name — give a name such as "
        "imp1.example.com"
    )  # fmt: skip

    config(home, "acl", "add", "--ip", "127.0.0.3")
    config(home, "acl", "add", "--fqdn", "ocs1.example.com")
    out = config(home, "acl", "set", "--ip", "127.0.0.3", "--new-ip", "127.0.0.7")
    assert out == f"changed ACL entry 127.0.0.3 (now 127.0.0.7) {applied_by(home)}\n"
    assert config_json(home, "acl", "list") == [{"ip": "127.0.0.7"}, {"fqdn": "ocs1.example.com"}]
    assert refused("config", "acl", "set", "--home", home, "--ip", "127.0.0.7") == (
        "acl: nothing to change — give --new-fqdn or --new-ip"
    )

    config(home, "hosts", "add", "ocs1.example.com", "127.0.0.3")
    config(home, "hosts", "set", "ocs1.example.com", "127.0.0.8")
    assert config_json(home, "hosts", "list") == [{"fqdn": "ocs1.example.com", "ip": "127.0.0.8"}]
    assert refused("config", "hosts", "set", "--home", home, "ocs9.example.com", "127.0.0.8") == (
        "hosts: ocs9.example.com is not configured — see intrafed config hosts list"
    )

    config(home, "user", "add", "alice@example.com", "--password-file", "-", stdin="one\n")
    config(home, "user", "disable", "alice@example.com")
    before = config_json(home, "show")["users"][0]
    config(home, "user", "set", "alice@example.com", "--password-file", "-", stdin="two\n")
    after = config_json(home, "show")["users"][0]
    assert (after["enabled"], after["aor"]) == (False, "alice@example.com")
    assert after["ha1_sha256"] != before["ha1_sha256"]
    assert refused("config", "user", "set", "--home", home, "alice@example.com",
                   "--password-file", "-", stdin="") == (
        "--password-file: the password is empty — write it in the file"
    )  # fmt: skip
