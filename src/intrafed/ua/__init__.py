"""A small asyncio SIP user agent (for labs, scripts, tests and the demo): one user over
one TCP or TLS connection to its home node, as a client behind NAT.
"""

from intrafed.ua.agent import (
    DEFAULT_TIMEOUT,
    Event,
    ImSession,
    MessageReceived,
    PresenceNotified,
    Reply,
    SessionEnded,
    SessionStarted,
    SipError,
    Subscription,
    TypingReceived,
    UaError,
    UaSettings,
    UserAgent,
    user_tls_context,
)

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
