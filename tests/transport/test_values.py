"""The transport's value types and listener setup refuse what cannot work."""

from __future__ import annotations

import pytest

from intrafed.transport import Destination, ListenerSpec, TransportError
from tests.lab_pki import node_server_context
from tests.transport.conftest import Pki
from tests.transport.helpers import SERVER_IP, Node, run


def test_tls_destination_needs_a_server_name_to_verify() -> None:
    with pytest.raises(ValueError, match="server_name"):
        Destination("TLS", "127.0.0.3", 5061)


@pytest.mark.parametrize("transport", ["UDP", "MTLS", "tcp"])
def test_destination_transport_is_tcp_or_tls(transport: str) -> None:
    with pytest.raises(ValueError, match="TCP or TLS"):
        Destination(transport, "127.0.0.3", 5060)


def test_listener_spec_all_binds_every_address_and_checks_its_fields() -> None:
    assert ListenerSpec("All", "MTLS", 5061).bind_address == "0.0.0.0"  # noqa: S104
    assert ListenerSpec("127.0.0.2", "TCP", 5060).bind_address == "127.0.0.2"
    with pytest.raises(ValueError, match="TCP, TLS or MTLS"):
        ListenerSpec("All", "UDP", 5060)
    with pytest.raises(ValueError, match="out of range"):
        ListenerSpec("All", "TCP", 70000)


def test_tls_listeners_need_their_context_and_mtls_must_require_client_certs(pki: Pki) -> None:
    async def scenario() -> None:
        async with Node(mtls_ssl=node_server_context(pki.server, pki.ca)) as node:
            with pytest.raises(ValueError, match="server_ssl"):
                await node.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            with pytest.raises(ValueError, match="require client certificates"):
                await node.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))

    run(scenario())


def test_listening_on_a_taken_port_names_the_address() -> None:
    async def scenario() -> None:
        async with Node() as node:
            ip, port = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            with pytest.raises(TransportError) as caught:
                await node.layer.listen(ListenerSpec(ip, "TCP", port))
            assert caught.value.reason == (
                f"cannot listen on {ip}:{port} (TCP): Address already in use"
            )

    run(scenario())
