"""In-dialog requests are spared a challenge only within a dialog of this node: our
Record-Route, signed for the dialog, or a subscription the node serves."""

from __future__ import annotations

from intrafed.policy import RouteStamp, in_our_dialog
from intrafed.sip import Request
from intrafed.sip.uri import SipUri, Uri
from tests.messages import request

STAMP = RouteStamp(b"a route secret of 32 bytes......")
OURS = "<sip:127.0.0.2:5060;transport=tcp;lr{}>"


def is_ours(uri: Uri) -> bool:
    return isinstance(uri, SipUri) and (uri.host, uri.port) == ("127.0.0.2", 5060)


def never(request: Request) -> bool:
    return False


def in_dialog(
    route: str,
    *,
    call_id: str = "call-1@127.0.0.10",
    tags: tuple[str, str] = ("alice-tag", "bob-tag"),
) -> Request:
    return request(
        "BYE",
        "sip:bob@127.0.0.9:5070;transport=tcp",
        call_id=call_id,
        from_tag=tags[0],
        to=f"<sip:bob@example.com>;tag={tags[1]}",
        extra=f"Route: {route}\r\n" if route else "",
    )


def test_our_signed_record_route_marks_the_dialog_in_both_directions() -> None:
    creating = request("INVITE")
    signed = OURS.format(STAMP.params(creating))
    assert in_our_dialog(in_dialog(signed), STAMP, is_ours, never)
    # The callee's requests carry the caller's tag as To tag.
    assert in_our_dialog(in_dialog(signed, tags=("bob-tag", "alice-tag")), STAMP, is_ours, never)


def test_our_address_without_a_valid_signature_is_not_our_dialog() -> None:
    creating = request("INVITE")
    signature = STAMP.params(creating)
    assert not in_our_dialog(in_dialog(OURS.format("")), STAMP, is_ours, never)
    # Copied into another dialog, or signed by another node, it proves nothing.
    other = in_dialog(OURS.format(signature), call_id="another@127.0.0.66")
    assert not in_our_dialog(other, STAMP, is_ours, never)
    forged = OURS.format(RouteStamp(b"another secret of 32 bytes......").params(creating))
    assert not in_our_dialog(in_dialog(forged), STAMP, is_ours, never)
    # Nor does a signature on someone else's host.
    elsewhere = f"<sip:127.0.0.66:5060;transport=tcp;lr{signature}>"
    assert not in_our_dialog(in_dialog(elsewhere), STAMP, is_ours, never)


def test_a_subscription_we_serve_is_our_dialog_when_no_route_leads_elsewhere() -> None:
    def ours(request: Request) -> bool:
        return True

    resubscribe = request(
        "SUBSCRIBE", "sip:bob@127.0.0.2:5060;transport=tcp", to="<sip:bob@example.com>;tag=b"
    )
    assert in_our_dialog(resubscribe, STAMP, is_ours, ours)
    assert not in_our_dialog(resubscribe, STAMP, is_ours, never)
    routed = request(
        "SUBSCRIBE",
        "sip:bob@127.0.0.2:5060;transport=tcp",
        to="<sip:bob@example.com>;tag=b",
        extra="Route: <sip:evil.example.org;lr>\r\n",
    )
    assert not in_our_dialog(routed, STAMP, is_ours, ours)
    assert not in_our_dialog(request("SUBSCRIBE", "sip:bob@127.0.0.2:5060"), STAMP, is_ours, ours)
