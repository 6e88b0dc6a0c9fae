"""An IM&P member answers OPTIONS to its cluster's name as to itself: OCS routes to the
cluster by that name (the certificate of every member carries it), so the front ends'
probes address it. It used to refuse them with 403, as a request from a sender the other
partition may not speak for."""

from __future__ import annotations

import asyncio

from intrafed.config.model import AclEntry, ImpListeners, NodeConfig, NodeIdentity, Role
from intrafed.node import Node, settings_from_config
from intrafed.sip import Response
from tests.integration.clients import connect
from tests.integration.peers import free_port
from tests.messages import request

NODE_IP, OCS_IP = "127.0.49.50", "127.0.49.51"


def answers(cluster: str, uri: str) -> int:
    """The status a member of ``cluster`` answers to an OPTIONS to ``uri`` from the OCS
    side (trusted by the incoming ACL)."""
    config = NodeConfig(
        NodeIdentity(Role.IMP, "imp1.example.com", NODE_IP, cluster=cluster),
        domains=("example.com",),
        listeners=ImpListeners(
            tcp=free_port(NODE_IP), peer_auth=free_port(NODE_IP), server_auth=free_port(NODE_IP)
        ),
        acl=(AclEntry(ip=OCS_IP),),
    )

    async def scenario() -> int:
        node = Node(settings_from_config(config))
        bound = await node.start()
        opened: list[asyncio.StreamWriter] = []
        try:
            client = await connect(bound["TCP"], OCS_IP, opened)
            probe = request("OPTIONS", uri, sent_by=f"{OCS_IP}:5060", to=f"<{uri}>")
            client.writer.write(probe.to_bytes())
            response = await client.next()
            assert isinstance(response, Response)
            return response.status
        finally:
            for writer in opened:
                writer.close()
            await node.stop(grace=0.5)

    return asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_imp_member_answers_options_to_its_cluster_name_as_to_itself() -> None:
    assert answers("cup.example.com", "sip:cup.example.com;transport=tcp") == 200


def test_a_cluster_name_that_is_no_fqdn_is_no_name_of_the_member() -> None:
    assert answers("cluster1", "sip:cluster1;transport=tcp") == 403
