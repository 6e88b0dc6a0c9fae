"""The control API of a running node: what the CLI (and later a console or metrics) asks a
node over a Unix socket in its home — status, reload with a typed refusal, how a URI would
be routed, live registrations and subscriptions.
"""

from intrafed.control.protocol import (
    MAX_REQUEST_BYTES,
    ControlError,
    ControlTarget,
    Refused,
    dispatch,
)

__all__ = ["MAX_REQUEST_BYTES", "ControlError", "ControlTarget", "Refused", "dispatch"]
