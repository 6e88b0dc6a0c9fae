"""The console in a real browser (Chromium driven by Playwright) against a running seed
deployment: log in, edit routes and host authorization with the CLI's rules, import and
select a certificate, restart a node with pending changes, the Check page green for the
deployment and the Trace page drawing a MESSAGE that crossed the partitions. Each page is
saved as a screenshot (and into $INTRAFED_SCREENSHOTS when set)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from intrafed.check import SeedDeployment
from intrafed.config.model import NodeIdentity, Role
from intrafed.console.config_pages import config_pages
from intrafed.pki import CertificateAuthority, thumbprint
from intrafed.ua import MessageReceived, UaSettings, UserAgent
from tests.check.running import seed_on_free_ports
from tests.console.running import PASSWORD, RunningConsole, console, intrafed, set_password
from tests.integration.peers import free_port
from tests.lab_pki import issue

sync_api = pytest.importorskip("playwright.sync_api")

IMP_IP, OCS_IP, ALICE_IP, BOB_IP = "127.0.18.20", "127.0.18.21", "127.0.18.22", "127.0.18.23"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
UA_TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedDeployment]:
    """The seed deployment with both nodes running in the background."""
    seed = seed_on_free_ports(tmp_path_factory.mktemp("seed"), IMP_IP, OCS_IP)
    set_password(seed.ocs.home)
    set_password(seed.imp.home)
    started = []
    try:
        for node in seed.nodes:
            result = intrafed("service", "start", "--home", str(node.home))
            assert result.returncode == 0, result.stderr
            started.append(node.home)
        yield seed
    finally:
        for home in started:
            intrafed("service", "stop", "--home", str(home))


@pytest.fixture(scope="module")
def running(deployment: SeedDeployment) -> Iterator[RunningConsole]:
    with console(deployment.ocs.home, "--peer", str(deployment.imp.home)) as target:
        yield target


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _new_page(browser: sync_api.Browser) -> sync_api.Page:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    return context.new_page()


@pytest.fixture(scope="module")
def page(browser: sync_api.Browser, running: RunningConsole) -> sync_api.Page:
    return _new_page(browser)


def _shot(page: sync_api.Page, screenshots: Path, name: str) -> None:
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    wanted = os.environ.get("INTRAFED_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / path.name)
    assert path.stat().st_size > 0


def _go(page: sync_api.Page, running: RunningConsole, path: str) -> None:
    page.goto(running.url + path)


def test_log_in(page: sync_api.Page, running: RunningConsole, screenshots: Path) -> None:
    _go(page, running, "/config/routing")
    assert page.url.endswith("/login?next=/config/routing")
    _shot(page, screenshots, "login")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.inner_text(".error") == "wrong password"
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url.endswith("/config/routing")
    assert page.inner_text("h1") == "Routing"


def test_the_check_page_is_green_for_the_deployment(
    page: sync_api.Page, running: RunningConsole, screenshots: Path
) -> None:
    _go(page, running, "/check")
    summary = page.locator("#check-summary")
    assert "0 errors" in summary.inner_text()
    assert "ocs1.example.com" in summary.inner_text()
    assert "imp1.example.com" in summary.inner_text()
    assert "fail" not in (summary.get_attribute("class") or "")
    assert page.locator(".badge.fail").count() == 0
    _shot(page, screenshots, "check")


def _user_agent(deployment: SeedDeployment, name: str, source_ip: str) -> UserAgent:
    """``name`` as a TLS client of its home node (as the demo's users are)."""
    user = next(user for user in deployment.users if user.aor.startswith(name))
    node = deployment.node(user.role)
    return UserAgent(
        UaSettings(
            user.aor,
            (node.ip, node.client_tls_port),
            password=user.password,
            transport="tls",
            server_name=node.fqdn,
            ca_file=deployment.ca_certificate,
            source_ip=source_ip,
        )
    )


async def _alice_messages_bob(deployment: SeedDeployment) -> str:
    alice = _user_agent(deployment, "alice", ALICE_IP)
    bob = _user_agent(deployment, "bob", BOB_IP)
    async with asyncio.timeout(UA_TIMEOUT), alice, bob:
        await bob.register()
        await alice.register()
        await alice.message(bob.settings.aor, "hello across the partitions")
        received = await bob.next_event(MessageReceived)
        return received.text


def test_the_trace_page_draws_the_cross_partition_message(
    page: sync_api.Page, running: RunningConsole, deployment: SeedDeployment, screenshots: Path
) -> None:
    _go(page, running, "/trace")
    page.click("text=Start trace")
    assert "trace started" in page.inner_text(".notice")
    started = intrafed("trace", "start", "--home", str(deployment.imp.home))
    assert started.returncode == 0, started.stderr
    # Playwright's sync API runs its own event loop in this thread: the user gets another.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        status = thread.submit(asyncio.run, _alice_messages_bob(deployment)).result()
    assert status == "hello across the partitions"
    _go(page, running, "/trace")
    ladder = page.locator("svg#ladder")
    labels = ladder.locator("text.label").all_text_contents()
    assert any(label.startswith("MESSAGE sip:bob@example.com") for label in labels), labels
    names = ladder.locator("text.node").all_text_contents()
    assert names == ["imp1.example.com", "ocs1.example.com"]
    _shot(page, screenshots, "trace")


def test_live_registrations_and_probe(
    page: sync_api.Page, running: RunningConsole, screenshots: Path
) -> None:
    _go(page, running, "/live")
    assert page.locator("#registrations").is_visible()
    _shot(page, screenshots, "live")
    _go(page, running, "/probe")
    assert page.locator("#probe .badge").count() > 0
    _shot(page, screenshots, "probe")


def _add_tls_route(
    page: sync_api.Page, running: RunningConsole, domain: str, **next_hop: str
) -> None:
    """Fill in the Routing tab's form for a TLS route to port 5061 and submit it."""
    _go(page, running, "/config/routing")
    page.fill("#add-domain", domain)
    page.select_option("#add-transport", "TLS")
    for field, value in next_hop.items():
        page.fill(f"#add-{field}", value)
    page.fill("#add-port", "5061")
    page.click("#form-add button[type=submit]")


def test_add_a_tls_static_route_by_fqdn(
    page: sync_api.Page, running: RunningConsole, screenshots: Path
) -> None:
    _add_tls_route(page, running, "partner.example.org", fqdn="edge.partner.example.org")
    assert "added static route partner.example.org" in page.inner_text(".notice")
    row = page.locator("#listing tr", has_text="partner.example.org")
    assert row.locator("td").all_inner_texts()[:4] == [
        "partner.example.org",
        "TLS",
        "edge.partner.example.org",
        "5061",
    ]
    _shot(page, screenshots, "routing")


def test_a_tls_route_by_ip_shows_the_seeds_important_note_beside_the_field(
    page: sync_api.Page, running: RunningConsole, screenshots: Path
) -> None:
    _add_tls_route(page, running, "other.example.org", ip="192.0.2.7")
    error = page.locator("#add-ip-error")
    assert "TLS static routes must name the next hop by FQDN" in error.inner_text()
    assert "the seed's 'Important' note" in error.inner_text()
    assert page.locator(".field.invalid #add-ip").count() == 1
    assert page.input_value("#add-domain") == "other.example.org"  # kept for a retry
    assert page.locator("#listing tr", has_text="other.example.org").count() == 0
    _shot(page, screenshots, "routing-error")


def test_add_host_authorization_entries(
    page: sync_api.Page, running: RunningConsole, screenshots: Path
) -> None:
    _go(page, running, "/config/hostauth")
    for option, value in (("fqdn", "edge.partner.example.org"), ("ip", "192.0.2.8")):
        page.fill(f"#add-{option}", value)
        page.click("#form-add button[type=submit]")
        assert f"authorized host {value}" in page.inner_text(".notice")
    for host in ("edge.partner.example.org", "192.0.2.8"):
        cells = page.locator("#listing tr", has_text=host).locator("td").all_inner_texts()
        assert cells[:4] == [host, "no", "yes", "yes"]
    page.fill("#add-fqdn", "edge.partner.example.org")
    page.click("#form-add button[type=submit]")
    assert "already" in page.locator("#form-add .error").inner_text()
    _shot(page, screenshots, "hostauth")


def test_import_and_select_a_certificate(
    page: sync_api.Page,
    running: RunningConsole,
    deployment: SeedDeployment,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    ca = CertificateAuthority.load(deployment.ca_dir)
    issued = issue(ca, NodeIdentity(Role.OCS, deployment.ocs.fqdn, deployment.ocs.ip))
    certificate, key = issued.write(tmp_path)
    thumb = thumbprint(issued.certificate)
    _go(page, running, "/config/security")
    page.select_option("#import-store", "personal")
    page.set_input_files("#import-file", str(certificate))
    page.set_input_files("#import-key", str(key))
    page.click("#form-import button[type=submit]")
    assert f"imported into personal: {thumb}" in page.inner_text(".notice")
    row = page.locator("#listing tr", has_text=thumb[:16])
    assert "present" in row.inner_text()
    row.locator("button", has_text="Select").click()
    assert f"selected {thumb}" in page.inner_text(".notice")
    selected = page.locator("#listing tr", has_text=thumb[:16]).locator("td").all_inner_texts()
    assert "selected" in selected
    _shot(page, screenshots, "security")
    listed = intrafed("pki", "list", "--json", "--home", str(deployment.ocs.home))
    assert f'"selected": "{thumb}"' in listed.stdout


def test_restart_pending_then_restart(
    page: sync_api.Page, running: RunningConsole, deployment: SeedDeployment, screenshots: Path
) -> None:
    port = free_port(deployment.ocs.ip)
    _go(page, running, "/config/general")
    page.select_option("#add-transport", "TCP")
    page.fill("#add-port", str(port))
    page.fill("#add-ip", deployment.ocs.ip)
    page.click("#form-add button[type=submit]")
    assert f"added connection TCP {deployment.ocs.ip}:{port}" in page.inner_text(".notice")
    _go(page, running, "/status")
    pending = page.locator("#pending")
    assert "restart pending" in pending.inner_text()
    assert f"connections: added TCP {deployment.ocs.ip}:{port}" in pending.inner_text()
    _shot(page, screenshots, "status-pending")
    page.click("button:has-text('Restart')")
    assert "started ocs1.example.com" in page.inner_text(".notice")
    assert page.inner_text("#service-state") == "running"
    assert "The staged configuration is the running one." in page.inner_text("#pending")
    _shot(page, screenshots, "status")


def test_every_tab_renders(page: sync_api.Page, running: RunningConsole, screenshots: Path) -> None:
    for slug in ("general", "fips", "users"):
        _go(page, running, f"/config/{slug}")
        assert page.locator("#listing").is_visible()
        _shot(page, screenshots, slug)


def test_the_im_and_presence_console(
    browser: sync_api.Browser, deployment: SeedDeployment, screenshots: Path
) -> None:
    with console(deployment.imp.home) as target:
        page = _new_page(browser)
        _go(page, target, "/")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        assert page.inner_text("h1") == "Status"
        assert "IM and Presence" in page.inner_text("header")
        nav = page.locator("nav a").all_inner_texts()
        # The tabs, in the order test_forms pins for the role.
        tabs = [tab.title for tab in config_pages(Role.IMP)]
        assert nav[: len(tabs)] == tabs
        for slug in ("listeners", "routing", "peer-subjects", "acl", "routing-mode"):
            _go(page, target, f"/config/{slug}")
            assert page.locator("#listing tbody tr").count() >= 1, slug
            _shot(page, screenshots, f"imp-{slug}")
        _go(page, target, "/config/routing")
        assert page.locator("#listing th").all_inner_texts()[-2] == "PRIORITY"
        assert "ocs1.example.com" in page.inner_text("#listing")
        page.context.close()
