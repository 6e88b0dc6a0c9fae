"""The console over a real socket: authentication, CSRF, the login throttle, cookies,
forms refused with the CLI's messages, secrets never shown, and TLS with the node's
certificate."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from intrafed.check import SeedDeployment
from intrafed.console.password import PASSWORD_FILE
from intrafed.store import open_store
from tests.check.running import seed_on_free_ports
from tests.console.running import (
    CONSOLE_IP,
    Client,
    RunningConsole,
    console,
    intrafed,
    set_password,
)

IMP_IP, OCS_IP = "127.0.18.2", "127.0.18.3"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> SeedDeployment:
    seed = seed_on_free_ports(tmp_path_factory.mktemp("seed"), IMP_IP, OCS_IP)
    set_password(seed.ocs.home)
    return seed


@pytest.fixture(scope="module")
def running(deployment: SeedDeployment) -> Iterator[RunningConsole]:
    with console(deployment.ocs.home, "--peer", str(deployment.imp.home)) as target:
        yield target


def _logged_in(running: RunningConsole, source: str = "127.0.18.10") -> Client:
    client = Client(running, source)
    answer = client.log_in()
    assert answer.status == 303, answer.body
    return client


def test_first_start_without_a_password_is_refused_naming_the_command(
    deployment: SeedDeployment,
) -> None:
    imp_home = deployment.imp.home
    assert not (imp_home / PASSWORD_FILE).exists()
    result = intrafed("admin", "--home", str(imp_home), "--listen", "127.0.18.1:18999")
    assert result.returncode == 2
    assert f"intrafed admin password --home {imp_home}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_password_is_kept_as_a_scrypt_hash_readable_by_its_owner_only(
    deployment: SeedDeployment,
) -> None:
    path = deployment.ocs.home / PASSWORD_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("scrypt$")
    assert "correct horse" not in path.read_text()


def test_a_short_password_is_refused(deployment: SeedDeployment) -> None:
    result = intrafed("admin", "password", "--home", str(deployment.ocs.home), stdin="short\n")
    assert result.returncode == 2
    assert "PASSWORD: is shorter than 8 characters" in result.stderr


def test_no_session_redirects_to_the_login_page(running: RunningConsole) -> None:
    answer = Client(running).request("GET", "/config/routing")
    assert answer.status == 303
    assert answer.header("Location") == "/login?next=/config/routing"


def test_login_sets_an_http_only_strict_cookie_and_goes_where_it_was_asked(
    running: RunningConsole,
) -> None:
    client = Client(running)
    answer = client.request(
        "POST",
        "/login",
        {
            "csrf": client.csrf("/login?next=/check"),
            "password": "correct horse battery",
            "next": "/check",
        },
    )
    assert answer.status == 303
    assert answer.header("Location") == "/check"
    cookie = answer.header("Set-Cookie")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    assert client.request("GET", "/status").status == 200


def test_login_refuses_a_next_page_elsewhere(running: RunningConsole) -> None:
    client = Client(running)
    form = {"csrf": client.csrf("/login"), "password": "correct horse battery"}
    answer = client.request("POST", "/login", {**form, "next": "//evil.example/"})
    assert answer.header("Location") == "/"


def test_post_without_or_with_a_wrong_csrf_token_is_forbidden(
    running: RunningConsole, deployment: SeedDeployment
) -> None:
    client = _logged_in(running)
    form = {
        "action": "add",
        "domain": "x.example.org",
        "transport": "TLS",
        "fqdn": "a.example.org",
        "port": "5061",
    }
    assert client.request("POST", "/config/routing", form).status == 403
    assert client.request("POST", "/config/routing", {**form, "csrf": "forged"}).status == 403
    assert client.request("POST", "/status", {"action": "restart", "csrf": ""}).status == 403
    with open_store(deployment.ocs.home) as store:
        assert "x.example.org" not in {route.domain for route in store.load("staged").routes}


def test_post_without_a_session_is_forbidden(running: RunningConsole) -> None:
    client = Client(running)
    token = client.csrf("/login")  # an anonymous session's token is not a login
    answer = client.request("POST", "/status", {"action": "restart", "csrf": token})
    assert answer.status == 403


def test_five_wrong_passwords_slow_the_source_down(running: RunningConsole) -> None:
    client = Client(running, source="127.0.18.66")
    for _ in range(5):
        assert client.log_in("wrong password").status == 401
    answer = client.log_in()  # even the right one must wait now
    assert answer.status == 429
    assert int(answer.header("Retry-After")) >= 1
    assert "too many wrong passwords" in answer.body
    # Another source is not held up by this one.
    assert Client(running, source="127.0.18.67").log_in().status == 303
    log = running.log.read_text()
    assert log.count("WARNING intrafed.console.app: wrong password from 127.0.18.66") == 5
    assert "login from 127.0.18.66 refused: too many wrong passwords" in log
    assert "INFO intrafed.console.app: login from 127.0.18.67" in log
    assert "correct horse" not in log


def test_a_form_is_refused_with_the_clis_message_beside_the_field(
    running: RunningConsole, deployment: SeedDeployment
) -> None:
    client = _logged_in(running)
    form = {
        "csrf": client.csrf("/config/routing"),
        "action": "add",
        "domain": "partner.example.org",
        "transport": "TLS",
        "ip": "192.0.2.7",
        "port": "5061",
    }
    answer = client.request("POST", "/config/routing", form)
    assert answer.status == 400
    beside = re.search(r'id="add-ip-error"[^>]*>([^<]+)<', answer.body)
    assert beside is not None
    expected = intrafed(
        "config",
        "route",
        "add",
        "--home",
        str(deployment.ocs.home),
        "--domain",
        "partner.example.org",
        "--transport",
        "TLS",
        "--ip",
        "192.0.2.7",
        "--port",
        "5061",
    ).stderr.strip()
    assert beside.group(1).replace("&#39;", "'") == expected
    assert "the seed&#39;s &#39;Important&#39; note" in answer.body


def test_no_password_or_ha1_is_ever_rendered(
    running: RunningConsole, deployment: SeedDeployment
) -> None:
    client = _logged_in(running)
    with open_store(deployment.ocs.home) as store:
        users = store.load("staged").users
    secrets = [u.ha1_md5 for u in users] + [u.ha1_sha256 for u in users]
    secrets += [user.password for user in deployment.users]
    pages = ["/config/users", "/config/security", "/status", "/check", "/config/general"]
    for page in pages:
        body = client.request("GET", page).body
        assert all(secret and secret not in body for secret in secrets), page
    assert "BEGIN" not in client.request("GET", "/config/security").body


def test_the_console_serves_tls_with_the_nodes_certificate(deployment: SeedDeployment) -> None:
    with console(deployment.ocs.home, tls=True) as target:
        client = Client(target, ca_file=deployment.ca_certificate)
        answer = client.log_in()
        assert answer.status == 303
        assert "Secure" in answer.header("Set-Cookie")


def test_a_fix_the_check_offers_is_a_button_that_applies_it(
    running: RunningConsole, deployment: SeedDeployment
) -> None:
    ocs, imp_ip = str(deployment.ocs.home), deployment.imp.ip
    removed = intrafed("config", "hostauth", "remove", "--ip", imp_ip, "--home", ocs)
    assert removed.returncode == 0, removed.stderr
    client = _logged_in(running)
    fix = f"intrafed config hostauth add --ip {imp_ip} --home {ocs}"
    page = client.request("GET", "/check").body
    assert "hostauth.ip" in page
    assert f'name="fix" value="{fix}"' in page
    token = client.csrf("/check")
    # Only a fix the check offers now is run, never a command a form makes up.
    made_up = f"intrafed config hostauth add --ip 192.0.2.99 --home {ocs}"
    answer = client.request("POST", "/check", {"csrf": token, "fix": made_up})
    assert answer.status == 303
    assert "not offered" in client.request("GET", "/check").body
    answer = client.request("POST", "/check", {"csrf": token, "fix": fix})
    assert answer.status == 303
    after = client.request("GET", "/check").body
    assert f"$ {fix}" in after
    assert "hostauth.ip" not in after
    with open_store(deployment.ocs.home) as store:
        hosts = [entry.host for entry in store.load("staged").host_authorizations]
    assert imp_ip in hosts
    assert "192.0.2.99" not in hosts


def test_the_im_and_presence_tabs_edit_with_the_clis_rules(
    deployment: SeedDeployment, tmp_path: Path
) -> None:
    home = tmp_path / "imp1"
    shutil.copytree(deployment.imp.home, home)
    set_password(home)
    with console(home) as target:
        client = _logged_in(target, source="127.0.18.11")
        for slug in (
            "listeners",
            "routing",
            "peer-subjects",
            "acl",
            "routing-mode",
            "security",
            "users",
        ):
            assert client.request("GET", f"/config/{slug}").status == 200, slug
        assert client.request("GET", "/config/hostauth").status == 404  # an OCS tab
        # A settings form starts from the staged values.
        listeners = client.request("GET", "/config/listeners").body
        peer_auth = deployment.imp.tls_port
        assert f'id="set-peer-auth" name="peer-auth" value="{peer_auth}"' in listeners
        token = client.csrf("/config/listeners")
        clash = {"csrf": token, "action": "set", "peer-auth": "5061", "server-auth": "5061"}
        answer = client.request("POST", "/config/listeners", clash)
        assert answer.status == 400
        assert 'id="set-server-auth-error"' in answer.body
        assert "Server Auth and Peer Auth both use port 5061" in answer.body
        backup = {
            "csrf": token,
            "action": "add",
            "domain": "example.com",
            "transport": "TLS",
            "fqdn": "ocs2.example.com",
            "port": "5061",
            "priority": "2",
        }
        assert client.request("POST", "/config/routing", backup).status == 303
        listed = intrafed("config", "route", "list", "--json", "--home", str(home)).stdout
        assert '"fqdn": "ocs2.example.com"' in listed
        assert '"priority": 2' in listed
        mode = {"csrf": token, "action": "set", "mode": "advanced"}
        assert client.request("POST", "/config/routing-mode", mode).status == 303
        assert "advanced" in client.request("GET", "/config/routing-mode").body


def test_the_fips_form_shows_the_staged_policy(
    running: RunningConsole, deployment: SeedDeployment
) -> None:
    client = _logged_in(running)
    assert 'name="fips" checked' in client.request("GET", "/config/fips").body
    token = client.csrf("/config/fips")
    off = {"csrf": token, "action": "set", "tls-profile": "default"}  # box unticked
    assert client.request("POST", "/config/fips", off).status == 303
    page = client.request("GET", "/config/fips").body
    assert 'name="fips" checked' not in page
    assert "FIPS policy saved" in page
    with open_store(deployment.ocs.home) as store:
        assert not store.load("staged").fips
    on = {**off, "fips": "on"}
    assert client.request("POST", "/config/fips", on).status == 303
    with open_store(deployment.ocs.home) as store:
        assert store.load("staged").fips


def test_a_request_for_another_host_name_is_refused(
    running: RunningConsole, deployment: SeedDeployment
) -> None:
    client = Client(running, source="127.0.18.12")
    port = running.port
    for host in (running.host, "localhost", deployment.ocs.fqdn):
        answer = client.request("GET", "/login", headers={"Host": f"{host}:{port}"})
        assert answer.status == 200, host
    rebound = client.request("GET", "/login", headers={"Host": f"attacker.example:{port}"})
    assert rebound.status == 400
    assert "csrf" not in rebound.body


def test_a_peer_that_is_not_a_home_is_named_not_a_traceback(
    deployment: SeedDeployment, tmp_path: Path
) -> None:
    with console(deployment.ocs.home, "--peer", str(tmp_path)) as target:
        client = _logged_in(target, source="127.0.18.13")
        answer = client.request("GET", "/check")
        assert answer.status == 409
        assert str(tmp_path) in answer.body
        assert "Traceback" not in answer.body


def test_a_taken_address_is_named_and_nothing_is_announced(deployment: SeedDeployment) -> None:
    with socket.create_server((CONSOLE_IP, 0)) as taken:
        port = taken.getsockname()[1]
        result = intrafed(
            "admin", "--home", str(deployment.ocs.home), "--listen", f"{CONSOLE_IP}:{port}"
        )
    assert result.returncode == 2
    assert result.stderr.startswith(f"--listen: cannot listen on {CONSOLE_IP} port {port}")
    assert result.stdout == ""


def test_the_hosts_and_block_list_forms_stage_what_the_cli_would(
    deployment: SeedDeployment, tmp_path: Path
) -> None:
    home = tmp_path / "ocs1"
    shutil.copytree(deployment.ocs.home, home)
    set_password(home)
    with console(home) as target:
        client = _logged_in(target, source="127.0.18.12")
        token = client.csrf("/config/hosts")
        host = {"csrf": token, "action": "add", "fqdn": "ocs2.example.com", "address": "10.0.0.7"}
        assert client.request("POST", "/config/hosts", host).status == 303
        hosts = intrafed("config", "hosts", "list", "--json", "--home", str(home)).stdout
        assert '"fqdn": "ocs2.example.com"' in hosts
        wrong = {**host, "action": "set", "address": "not-an-address"}
        answer = client.request("POST", "/config/hosts", wrong)
        assert answer.status == 400
        assert 'id="set-address-error"' in answer.body
        gone = {"csrf": token, "action": "remove", "fqdn": "ocs2.example.com"}
        assert client.request("POST", "/config/hosts", gone).status == 303
        hosts = intrafed("config", "hosts", "list", "--json", "--home", str(home)).stdout
        assert "ocs2.example.com" not in hosts

        block = {
            "csrf": token,
            "action": "block",
            "aor": "bob@example.com",
            "watcher": "mallory@example.com",
        }
        assert client.request("POST", "/config/users", block).status == 303
        users = client.request("GET", "/config/users").body
        assert "Unblock mallory@example.com" in users
        exported = intrafed("config", "export", "--home", str(home)).stdout
        assert 'blocked = [\n    "mallory@example.com",\n]' in exported
        unblock = {**block, "action": "unblock"}
        assert client.request("POST", "/config/users", unblock).status == 303
        assert "Unblock mallory" not in client.request("GET", "/config/users").body
        exported = intrafed("config", "export", "--home", str(home)).stdout
        assert "mallory@example.com" not in exported
