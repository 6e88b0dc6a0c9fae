"""asyncio listeners and connections for SIP over TCP, TLS and MTLS (DESIGN §5).

Feeds bytes to ``intrafed.sip``'s framer and writes what the node hands back; never
decides where a message goes.
"""

from intrafed.transport.errors import TransportError
from intrafed.transport.flows import (
    Destination,
    FlowId,
    ListenerSpec,
    PeerIdentity,
    TransportLimits,
)
from intrafed.transport.layer import DRAIN_IDLE_WAIT, Flow, TransportLayer

__all__ = [
    "DRAIN_IDLE_WAIT",
    "Destination",
    "Flow",
    "FlowId",
    "ListenerSpec",
    "PeerIdentity",
    "TransportError",
    "TransportLayer",
    "TransportLimits",
]
