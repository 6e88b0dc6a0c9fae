"""The checker's word is true, rule by rule: for every rule the configuration can breach,
the seed deployment (two real homes, ocs1 and imp1) gets that mistake, ``intrafed check``
reports it with its severity and exit status, the fix commands it prints are run as
written through the real CLI (only ``<CA directory>``, the CA the operator keeps off the
nodes, is filled in), and the finding is gone. Where the mistake can be lived on one
machine the two nodes run: a MESSAGE crosses the partition both ways after the fix, and
before it exactly when the rule is not an error.

Not lived (checked statically only, here and in test_rules.py): ``domain.none`` (a node
without a domain has no users left to send from), ``domain.mismatch`` (only users of the
extra domain are cut off, and the IM and Presence side then also needs its own route for
it: a second finding), ``tls.fips-tls12`` (a note, not a mistake). ``hostauth.peer-node``
(a second IM and Presence node, on another loopback address) and ``restart.pending`` (real
background nodes: the checker must see them run) have tests of their own below.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from intrafed.check import RULES, SeedDeployment
from intrafed.cli import main
from intrafed.node import Node
from intrafed.pki import CertificateAuthority, Severity, read_csr
from intrafed.pki.certificates import certificates_pem
from intrafed.store import open_store
from intrafed.transport import TransportError
from intrafed.ua import UaSettings, UserAgent
from intrafed.ua.agent import UaError
from tests.check.conftest import copy_of
from tests.check.mistakes import (
    CAROL,
    CAROL_PASSWORD,
    MISTAKES,
    OTHER_IP,
    Checked,
    force_select,
    intrafed,
    promote,
)
from tests.check.running import seed_on_free_ports

IMP_IP, OCS_IP, ALICE_IP, BOB_IP = "127.0.0.155", "127.0.0.156", "127.0.0.157", "127.0.0.158"
ALICE, BOB = "alice@example.com", "bob@example.com"
CA_PLACEHOLDER = "<CA directory>"
"""The one thing a printed fix leaves to the operator: the CA kept off the nodes."""
UA_TIMEOUT = 5.0
"""Seconds a user waits for any answer: a MESSAGE that gets none has not crossed."""

NOT_LIVED = {"domain.none", "domain.mismatch", "tls.fips-tls12"}
OWN_TESTS = {"hostauth.peer-node", "restart.pending", "user.neither-side"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> SeedDeployment:
    """The correct deployment on free ports of this module's addresses."""
    return seed_on_free_ports(tmp_path_factory.mktemp("live-seed"), IMP_IP, OCS_IP)


@pytest.fixture
def seed(pristine: SeedDeployment, tmp_path: Path) -> SeedDeployment:
    """A private copy of the correct deployment, for one mistake."""
    return copy_of(pristine, tmp_path / "seed")


# -- the CLI, as an administrator runs it -------------------------------------------------


def check(checked: Checked) -> tuple[int, list[dict[str, Any]]]:
    """``intrafed check --json``: its exit status and findings."""
    arguments = ["check", "--home", str(checked.home), "--json"]
    for peer in checked.peers:
        arguments += ["--peer", str(peer)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code in (0, 1), result.output
    findings: list[dict[str, Any]] = json.loads(result.stdout)["findings"]
    return result.exit_code, findings


def fix_commands(finding: dict[str, Any], seed: SeedDeployment) -> list[list[str]]:
    """The fix as printed, split into its commands; only the CA directory is filled in."""
    fix, _, step = finding["fix"].rpartition(" (seed: ")
    assert fix, finding["fix"]
    assert step.endswith(")"), finding["fix"]
    commands = []
    for command in fix.split(" && "):
        words = shlex.split(command.replace(CA_PLACEHOLDER, str(seed.ca_dir)))
        assert words[0] == "intrafed", command
        assert not any(word.startswith("<") for word in words), command
        commands.append(words[1:])
    return commands


def run_fix(words: list[str]) -> None:
    """One fix command through the real CLI; it must be accepted."""
    if words[0] == "service":
        # The background node is another process: drive it as the operator would.
        done = subprocess.run([sys.executable, "-m", "intrafed", *words], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, (words, done.stdout, done.stderr)
        return
    result = CliRunner().invoke(main, words)
    assert result.exit_code == 0, (words, result.output)


# -- the nodes, as a restart starts them ------------------------------------------------


@contextlib.asynccontextmanager
async def running(*homes: Path) -> AsyncIterator[bool]:
    """The nodes of ``homes`` started from their running configuration, in this order, as
    ``intrafed service start`` does; yields whether all of them started."""
    async with contextlib.AsyncExitStack() as stack:
        started = True
        for home in homes:
            store = stack.enter_context(open_store(home))
            served = Node.from_home(home, store)
            stack.push_async_callback(served.stop, 1.0)
            try:
                await served.start()
            except TransportError:
                started = False
        yield started


def user(seed: SeedDeployment, aor: str, transport: str) -> UserAgent:
    node = seed.imp if aor == ALICE else seed.ocs
    port = node.tcp_port if transport == "tcp" else node.client_tls_port
    return UserAgent(
        UaSettings(
            aor,
            (node.ip, port),
            password=seed.password(aor),
            transport=transport,
            server_name=node.fqdn,
            ca_file=seed.ca_certificate,
            source_ip=ALICE_IP if aor == ALICE else BOB_IP,
            timeout=UA_TIMEOUT,
        )
    )


async def register(seed: SeedDeployment, aor: str) -> UserAgent | None:
    """``aor`` registered on its node over TCP, else over TLS; None when neither works."""
    for transport in ("tcp", "tls"):
        agent = user(seed, aor, transport)
        try:
            await agent.connect()
            if (await agent.register()).status == 200:
                return agent
        except (UaError, OSError):
            pass
        await agent.close()
    return None


async def crosses(seed: SeedDeployment, sender: str, to: str) -> bool:
    """Whether a MESSAGE from ``sender`` reaches ``to`` (alice on imp1, bob on ocs1)."""
    source, target = await register(seed, sender), await register(seed, to)
    try:
        if source is None or target is None:
            return False
        try:
            reply = await source.message(to, "across the partition")
        except (UaError, OSError):
            return False
        return reply.status == 200
    finally:
        for agent in (source, target):
            if agent is not None:
                await agent.close()


def federates(seed: SeedDeployment) -> bool:
    """Start both nodes from their homes and send a MESSAGE one way, then start them again
    for the other way: a connection left open by one direction must not carry the other."""

    async def scenario(sender: str, to: str) -> bool:
        async with running(seed.imp.home, seed.ocs.home) as started:
            return started and await crosses(seed, sender, to)

    return all(
        asyncio.run(asyncio.wait_for(scenario(sender, to), 60))
        for sender, to in ((ALICE, BOB), (BOB, ALICE))
    )


@contextlib.contextmanager
def in_background(seed: SeedDeployment) -> Iterator[None]:
    """Both nodes run as ``intrafed service start`` runs them (their own processes)."""
    command = [sys.executable, "-m", "intrafed", "service"]
    try:
        for node in seed.nodes:
            started = subprocess.run([*command, "start", "--home", str(node.home)],
                                     capture_output=True, text=True, timeout=60,
                                     check=False)  # fmt: skip
            assert started.returncode == 0, started.stderr
        yield
    finally:
        for node in seed.nodes:
            subprocess.run([*command, "stop", "--home", str(node.home)], capture_output=True,
                           timeout=60, check=False)  # fmt: skip


# -- the mistakes the CLI check cannot see by itself ------------------------------------


def expired_certificate(seed: SeedDeployment) -> Checked:
    """``cert.expired`` without a clock: a certificate that ended yesterday, selected."""
    home = seed.ocs.home
    intrafed("pki", "csr", "--role", "ocs", "--key-type", "ec-p256", "--replace", home=home)
    [request] = (home / "pki" / "requests").glob("*.csr")
    csr = read_csr(request.read_bytes(), str(request))
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    signed = request.with_suffix(".pem")
    ca = CertificateAuthority.load(seed.ca_dir)
    signed.write_bytes(certificates_pem([ca.sign(csr, days=1, now=yesterday)]))
    intrafed("pki", "import", "--store", "personal", str(signed), home=home)
    listing = json.loads(intrafed("pki", "list", "--json", home=home))
    [new] = [c for c in listing["certificates"] if c["store"] == "personal" and not c["selected"]]
    force_select(home, new["thumbprint"])
    return Checked(home, (seed.imp.home,))


def make_mistake(rule: str, seed: SeedDeployment, tmp: Path) -> Checked:
    if rule == "cert.expired":
        checked = expired_certificate(seed)
    else:
        checked = MISTAKES[rule](seed, tmp) or Checked(seed.ocs.home, (seed.imp.home,))
    assert checked.now is None, rule
    return checked


# -- the test ----------------------------------------------------------------------------


def errors(findings: list[dict[str, Any]]) -> set[str]:
    return {f["rule"] for f in findings if f["severity"] == "error"}


def apply_fix(rule: str, findings: list[dict[str, Any]], seed: SeedDeployment) -> None:
    """Run every command of every finding of ``rule``, as printed."""
    mine = [f for f in findings if f["rule"] == rule]
    assert mine, findings
    for finding in mine:
        for words in fix_commands(finding, seed):
            run_fix(words)


@pytest.mark.parametrize("rule", sorted(set(RULES) - {"tls.fips-tls12", *OWN_TESTS}))
def test_each_rule_is_reported_with_its_severity_and_its_printed_fix_clears_it(
    rule: str, seed: SeedDeployment, tmp_path: Path
) -> None:
    checked = make_mistake(rule, seed, tmp_path)
    for node in seed.nodes:
        promote(node.home)
    live = rule not in NOT_LIVED
    if live:
        # An error breaks federation; a warning leaves it working.
        assert federates(seed) is (RULES[rule].severity is not Severity.ERROR), rule
    status, findings = check(checked)
    severities = {f["severity"] for f in findings if f["rule"] == rule}
    assert severities == {RULES[rule].severity.value}, findings
    assert status == (1 if errors(findings) else 0)
    apply_fix(rule, findings, seed)
    for node in seed.nodes:
        promote(node.home)  # what intrafed service restart does to the configuration
    status, findings = check(checked)
    assert rule not in {f["rule"] for f in findings}, findings
    if live:
        assert errors(findings) == set(), findings
        assert status == 0
        assert federates(seed), rule


def test_restart_pending_while_the_node_runs_is_an_error_and_reload_clears_it(
    seed: SeedDeployment, tmp_path: Path
) -> None:
    """The running node lacks its route; the staged configuration has it back. The check
    of the staged settings would pass, but the node runs something else."""
    ocs = seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    checked = Checked(ocs, (seed.imp.home,))
    with in_background(seed):
        intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
                 "--port", str(seed.imp.tls_port), "--fqdn", seed.imp.fqdn, home=ocs)  # fmt: skip
        status, findings = check(checked)
        assert errors(findings) == {"restart.pending"}, findings
        assert status == 1
        assert not asyncio.run(asyncio.wait_for(crosses(seed, BOB, ALICE), 60))
        apply_fix("restart.pending", findings, seed)
        status, findings = check(checked)
        assert errors(findings) == set(), findings
        assert status == 0
        assert asyncio.run(asyncio.wait_for(crosses(seed, BOB, ALICE), 60))
        assert asyncio.run(asyncio.wait_for(crosses(seed, ALICE, BOB), 60))


def test_a_stopped_node_with_staged_changes_is_not_an_error(seed: SeedDeployment) -> None:
    """``intrafed service start`` runs the staged settings: nothing is pending for it."""
    intrafed("config", "hosts", "add", "extra.example.com", "127.0.0.79", home=seed.ocs.home)
    status, findings = check(Checked(seed.ocs.home, (seed.imp.home,)))
    assert "restart.pending" not in {f["rule"] for f in findings}
    assert status == 0


def test_a_tcp_only_federation_by_ip_checks_clean_and_federates(seed: SeedDeployment) -> None:
    """Both routes over TCP by IP, IM&P's ACL and OCS's host authorization by IP, no MTLS
    connection (OCS keeps its TLS connection for users): nothing asks for MTLS."""
    imp, ocs = seed.imp.home, seed.ocs.home
    for home, peer in ((imp, seed.ocs), (ocs, seed.imp)):
        intrafed("config", "route", "remove", "--domain", "example.com", home=home)
        intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TCP",
                 "--port", str(peer.tcp_port), "--ip", peer.ip, home=home)  # fmt: skip
    intrafed("config", "acl", "add", "--ip", seed.ocs.ip, home=imp)
    intrafed("config", "peer-subject", "remove", seed.ocs.fqdn, home=imp)
    intrafed("config", "hostauth", "remove", "--fqdn", seed.imp.fqdn, home=ocs)
    intrafed("config", "connection", "remove", "--transport", "MTLS", "--port",
             str(seed.ocs.tls_port), "--ip", seed.ocs.ip, home=ocs)  # fmt: skip
    for node in seed.nodes:
        promote(node.home)
    for checked in (Checked(ocs, (imp,)), Checked(imp, (ocs,)), Checked(ocs, ()), Checked(imp, ())):
        status, findings = check(checked)
        assert [f for f in findings if f["severity"] != "info"] == [], findings
        assert status == 0
    assert federates(seed)


def test_a_second_imp_node_without_host_authorization_is_refused_until_the_printed_fix(
    seed: SeedDeployment, tmp_path: Path
) -> None:
    """imp2 (carol's node) on another address: OCS refuses its requests until the fix."""
    checked = MISTAKES["hostauth.peer-node"](seed, tmp_path)
    assert checked is not None
    imp2 = checked.peers[-1]

    async def carol_reaches_bob() -> bool:
        async with running(seed.imp.home, seed.ocs.home, imp2) as started:
            assert started
            bob = await register(seed, BOB)
            carol = UserAgent(UaSettings(CAROL, (OTHER_IP, seed.imp.tcp_port),
                                         password=CAROL_PASSWORD, timeout=UA_TIMEOUT))  # fmt: skip
            try:
                await carol.connect()
                assert (await carol.register()).status == 200
                return (await carol.message(BOB, "from imp2")).status == 200
            except UaError:
                return False
            finally:
                await carol.close()
                if bob is not None:
                    await bob.close()

    assert not asyncio.run(asyncio.wait_for(carol_reaches_bob(), 60))
    status, findings = check(checked)
    assert {f["severity"] for f in findings if f["rule"] == "hostauth.peer-node"} == {"error"}
    assert status == 1
    apply_fix("hostauth.peer-node", findings, seed)
    promote(seed.ocs.home)
    status, findings = check(checked)
    assert errors(findings) == set(), findings
    assert status == 0
    assert asyncio.run(asyncio.wait_for(carol_reaches_bob(), 60))
