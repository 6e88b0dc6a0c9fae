"""Loop detection of the proxy (RFC 3261 §16.3 step 4, §16.6 step 8), sans-IO."""

from __future__ import annotations

import hashlib

from intrafed.sip.message import Request


def loop_hash(request: Request, node: str) -> str:
    """The loop-detection part of our branch (RFC 3261 §16.6 step 8): the fields that make
    a request the same request, so a spiral (new Request-URI) is not a loop. From and To
    are hashed as sent (tags included): the same request carries the same values, and
    nothing needs parsing. The ``node`` name is hashed too: the next proxy, which sees
    the same fields, finds no marker of its own in our Via and parses no Via for it."""
    headers = request.headers
    material = "\n".join(
        (
            node,
            request.start_line(),
            headers.get("from") or "",
            headers.get("to") or "",
            request.call_id,
            str(request.cseq.number),
            *headers.get_all("route"),
        )
    )
    return hashlib.blake2s(material.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()
