"""A small asyncio SIP user agent (for labs, scripts, tests and the demo): one user over
one TCP or TLS connection to its home node, as a client behind NAT.
"""

from intrafed.ua.agent import UserAgent
from intrafed.ua.dialogs import ImSession, Subscription
from intrafed.ua.events import (
    Event,
    MessageReceived,
    PresenceNotified,
    Reply,
    SessionEnded,
    SessionStarted,
    SipError,
    TypingReceived,
    UaError,
)
from intrafed.ua.settings import DEFAULT_TIMEOUT, UaSettings, user_tls_context

__all__ = [
    "DEFAULT_TIMEOUT",
    "Event",
    "ImSession",
    "MessageReceived",
    "PresenceNotified",
    "Reply",
    "SessionEnded",
    "SessionStarted",
    "SipError",
    "Subscription",
    "TypingReceived",
    "UaError",
    "UaSettings",
    "UserAgent",
    "user_tls_context",
]
