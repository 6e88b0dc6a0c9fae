"""A node's decisions without I/O: ``NodeCore`` takes frames, flow events and time, and
hands out typed actions (``intrafed.node`` runs it on asyncio)."""

from intrafed.core.actions import (
    Action,
    Alias,
    Clock,
    Connect,
    LogEvent,
    Peer,
    Persist,
    Send,
)
from intrafed.core.node_core import NodeCore
from intrafed.core.router import ALLOWED_METHODS, StateWrites

__all__ = [
    "ALLOWED_METHODS",
    "Action",
    "Alias",
    "Clock",
    "Connect",
    "LogEvent",
    "NodeCore",
    "Peer",
    "Persist",
    "Send",
    "StateWrites",
]
