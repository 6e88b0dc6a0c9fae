"""Prometheus metrics of running nodes over real sockets: a scrape during a two-node
federation counts the cross-partition MESSAGE on both nodes, and the failed TLS handshake
of an untrusted client on the MTLS listener by its reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tempfile
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from intrafed import __version__
from intrafed.core.meter import Meter
from intrafed.node import Node, NodeSettings
from intrafed.node_metrics import MetricsServer, registry_of
from intrafed.store import open_store
from intrafed.transport import ListenerSpec
from intrafed.ua import UaSettings, UserAgent
from tests.integration.federation import build_partitions
from tests.integration.peers import free_port
from tests.integration.test_service_restart import intrafed
from tests.lab_pki import issue_host, make_ca

IMP_IP, OCS_IP, ALICE_IP, BOB_IP, ROGUE_IP = (
    "127.0.0.201",
    "127.0.0.202",
    "127.0.0.203",
    "127.0.0.204",
    "127.0.0.205",
)


def scrape(address: tuple[str, int]) -> list[Sample]:
    """Every sample of one ``GET /metrics`` (blocking)."""
    url = f"http://{address[0]}:{address[1]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels``, 0 when absent."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    return found[0] if found else 0.0


def rogue_client_context(directory: Path) -> ssl.SSLContext:
    """A TLS client presenting a certificate of a CA the node does not trust (and not
    checking the node's: the handshake fails on the node's side)."""
    rogue = make_ca("rogue CA")
    issued = issue_host(rogue, "rogue.example.net", dns_names=("rogue.example.net",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(*issued.write(directory))
    return context


def anonymous_client_context() -> ssl.SSLContext:
    """A TLS client with no certificate at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def handshake(address: tuple[str, int], context: ssl.SSLContext) -> None:
    """Try a TLS connection to ``address`` and read until the node closes it."""
    try:
        reader, writer = await asyncio.open_connection(
            *address, ssl=context, local_addr=(ROGUE_IP, 0)
        )
    except (ssl.SSLError, OSError):
        return
    with contextlib.suppress(ssl.SSLError, OSError, TimeoutError):
        await asyncio.wait_for(reader.read(1), 5)
    writer.close()


def test_a_scrape_counts_the_cross_partition_message_and_untrusted_tls_clients(
    tmp_path: Path,
) -> None:
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)

    async def scenario() -> tuple[list[Sample], list[Sample]]:
        with (
            open_store(deployment.imp.home) as imp_store,
            open_store(deployment.ocs.home) as ocs_store,
        ):
            meters = Meter(), Meter()
            imp = Node.from_home(deployment.imp.home, imp_store, meter=meters[0])
            ocs = Node.from_home(deployment.ocs.home, ocs_store, meter=meters[1])
            servers = [
                MetricsServer(registry_of(imp, meters[0]), IMP_IP, 0),
                MetricsServer(registry_of(ocs, meters[1]), OCS_IP, 0),
            ]
            imp_listeners = await imp.start()
            await ocs.start()
            try:
                addresses = [await server.start() for server in servers]
                alice, bob = (
                    UserAgent(
                        UaSettings(
                            aor,
                            (node.ip, node.tcp_port),
                            deployment.password(aor),
                            source_ip=source,
                        )
                    )
                    for aor, node, source in (
                        ("alice@example.com", deployment.imp, ALICE_IP),
                        ("bob@example.com", deployment.ocs, BOB_IP),
                    )
                )
                async with alice, bob:
                    assert (await alice.register()).status == 200
                    assert (await bob.register()).status == 200
                    assert (await alice.message("bob@example.com", "hi bob")).status == 200
                mtls = imp_listeners["MTLS"]
                with tempfile.TemporaryDirectory() as directory:
                    await handshake(mtls, rogue_client_context(Path(directory)))
                await handshake(mtls, anonymous_client_context())
                return (
                    await asyncio.to_thread(scrape, addresses[0]),
                    await asyncio.to_thread(scrape, addresses[1]),
                )
            finally:
                for server in servers:
                    await server.close()
                await ocs.stop(grace=0.5)
                await imp.stop(grace=0.5)

    imp, ocs = asyncio.run(asyncio.wait_for(scenario(), 60))
    requests = "intrafed_sip_requests_total"
    # imp1 got the MESSAGE from alice and sent it to the peer partition …
    assert value(imp, requests, direction="in", method="MESSAGE", party="client") == 1
    assert value(imp, requests, direction="out", method="MESSAGE", party="peer_partition") == 1
    # … where ocs1 counted it coming from the peer partition, and sent it on to bob.
    assert value(ocs, requests, direction="in", method="MESSAGE", party="peer_partition") == 1
    assert value(ocs, requests, direction="out", method="MESSAGE", party="client") == 1
    responses = "intrafed_sip_responses_total"
    ok = {"method": "MESSAGE", "status_class": "2xx"}
    assert value(ocs, responses, direction="out", party="peer_partition", **ok) == 1
    assert value(imp, responses, direction="in", party="peer_partition", **ok) == 1
    assert value(imp, responses, direction="out", party="client", **ok) == 1
    latency = "intrafed_sip_transaction_duration_seconds_count"
    assert value(imp, latency, method="MESSAGE", party="peer_partition") == 1
    assert value(imp, "intrafed_registrations") == 1
    assert value(ocs, "intrafed_registered_users") == 1
    hop = f"TLS {deployment.ocs.fqdn}:{deployment.ocs.tls_port}"
    assert value(imp, "intrafed_next_hop_up", next_hop=hop) == 1
    decisions = "intrafed_authorization_decisions_total"
    assert value(imp, decisions, decision="accept", rule="digest") >= 1
    failures = "intrafed_tls_handshake_failures_total"
    mtls = {"transport": "MTLS", "direction": "inbound"}
    assert value(imp, failures, reason="untrusted_certificate", **mtls) == 1
    assert value(imp, failures, reason="no_certificate", **mtls) == 1


def test_the_metrics_listener_refuses_what_is_not_a_scrape_and_serves_the_next_one() -> None:
    async def scenario() -> list[bytes]:
        node = Node(
            NodeSettings(
                name="imp1.example.com",
                address=IMP_IP,
                listeners=(ListenerSpec(IMP_IP, "TCP", 0),),
            ),
            meter=Meter(),
        )
        meter = node.core.meter
        assert meter is not None
        server = MetricsServer(registry_of(node, meter), IMP_IP, 0)
        host, port = await server.start()
        answers = []
        try:
            for request in (
                b"NOT HTTP\r\n\r\n",
                b"POST /metrics HTTP/1.1\r\n\r\n",
                b"GET /admin HTTP/1.1\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n",
            ):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                answers.append(await asyncio.wait_for(reader.read(), 10))
                writer.close()
        finally:
            await server.close()
        return answers

    bad, post, elsewhere, huge, good = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert bad.startswith(b"HTTP/1.1 400 ")
    assert post.startswith(b"HTTP/1.1 405 ")
    assert elsewhere.startswith(b"HTTP/1.1 404 ")
    assert huge == b""  # a head over 8 KiB is not read to its end
    assert good.startswith(b"HTTP/1.1 200 ")
    assert b'\nintrafed_node_info{node="imp1.example.com"' in good


def test_service_start_serves_the_configured_metrics_and_show_stats_counts(
    tmp_path: Path,
) -> None:
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)
    home = str(deployment.imp.home)
    port = free_port(IMP_IP)
    staged = intrafed("config", "metrics", "--home", home, "--listen", f"{IMP_IP}:{port}")
    assert staged.returncode == 0, staged.stderr
    assert f"apply with intrafed service restart --home {home}" in staged.stdout
    started = intrafed("service", "start", "--home", home)
    assert started.returncode == 0, started.stderr
    try:
        samples = scrape((IMP_IP, port))
        stats = intrafed("show", "stats", "--home", home, "--json")
    finally:
        stopped = intrafed("service", "stop", "--home", home)
    assert stopped.returncode == 0, stopped.stderr
    assert value(samples, "intrafed_node_info", node="imp1.example.com", version=__version__) == 1
    assert value(samples, "intrafed_registrations") == 0
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["counted"]["store_errors"] == 0
