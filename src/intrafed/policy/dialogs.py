"""Whether an in-dialog request belongs to a dialog of this node (DESIGN §4 "Authorize"),
pure. Only such requests are spared a challenge: the Record-Route URI the node inserts
carries a parameter signed with the node's secret over the dialog's Call-ID and the From
tag of the request that created it, so a client cannot pass for a dialog of ours by
copying our address into a Route."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from intrafed.sip.message import Request
from intrafed.sip.uri import SipUri, Uri

ROUTE_PARAM = "ifd"
"""The Record-Route URI parameter that carries the signature."""


class RouteStamp:
    """Signs our Record-Route URIs for the dialog they record, and checks them."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the route secret must have at least 16 bytes")
        self._secret = secret

    def params(self, request: Request) -> str:
        """The URI parameters for our Record-Route in the dialog-creating ``request``."""
        return f";{ROUTE_PARAM}={self._sign(request.call_id, request.from_addr.tag or '')}"

    def recorded(self, request: Request, is_ours: Callable[[Uri], bool]) -> bool:
        """Whether ``request`` (with a To tag) follows a Record-Route of ours signed for its
        dialog: in its top Route, or in its Request-URI after a strict router."""
        if request.to_addr.tag is None:
            return False
        tags = [tag for tag in (request.from_addr.tag, request.to_addr.tag) if tag]
        routes = request.routes
        candidates = [routes[0].uri] if routes else []
        candidates.append(request.uri)
        for uri in candidates:
            if not (isinstance(uri, SipUri) and is_ours(uri)):
                continue
            signature = uri.param(ROUTE_PARAM)
            if signature and any(
                hmac.compare_digest(signature, self._sign(request.call_id, tag)) for tag in tags
            ):
                return True
        return False

    def _sign(self, call_id: str, tag: str) -> str:
        material = f"{call_id}\n{tag}".encode("utf-8", "surrogateescape")
        digest = hmac.new(self._secret, material, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(digest).decode("ascii")


def in_our_dialog(
    request: Request,
    stamp: RouteStamp,
    is_ours: Callable[[Uri], bool],
    owns_dialog: Callable[[Request], bool],
) -> bool:
    """Whether ``request`` belongs to a dialog of this node: it follows a Record-Route of
    ours (see ``RouteStamp.recorded``), or it is a request to us, with no Route but ours,
    within a dialog we serve (``owns_dialog``: our presence subscriptions)."""
    if request.to_addr.tag is None:
        return False
    if stamp.recorded(request, is_ours):
        return True
    return (
        is_ours(request.uri)
        and all(is_ours(route.uri) for route in request.routes)
        and owns_dialog(request)
    )
