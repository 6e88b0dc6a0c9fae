"""Small builders of SIP messages for unit tests."""

from __future__ import annotations

from intrafed.sip import Request, Response, parse_message


def request(
    method: str = "MESSAGE",
    uri: str = "sip:bob@example.com",
    *,
    branch: str = "z9hG4bK-client-1",
    sent_by: str = "127.0.0.10:5070",
    transport: str = "TCP",
    cseq: int = 1,
    call_id: str = "call-1@127.0.0.10",
    from_tag: str = "alice-tag",
    to: str = "<sip:bob@example.com>",
    extra: str = "",
    body: bytes = b"",
) -> Request:
    """A request from alice's UA at ``sent_by``; ``extra`` is more header lines (CRLF-ended)."""
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    message = parse_message(text.encode() + body, stream=True)
    assert isinstance(message, Request)
    return message


def response_to(sent: bytes, status: int, *, to_tag: str = "bob-tag", extra: str = "") -> Response:
    """The response a downstream UAS gives to the request it received as ``sent``."""
    received = parse_message(sent, stream=True)
    assert isinstance(received, Request)
    lines = [f"SIP/2.0 {status} Reason"]
    for name, value in received.headers:
        lowered = name.lower()
        if lowered in ("via", "from", "call-id", "cseq", "record-route"):
            lines.append(f"{name}: {value}")
        elif lowered == "to":
            tag = f";tag={to_tag}" if status > 100 and ";tag=" not in value else ""
            lines.append(f"{name}: {value}{tag}")
    text = "\r\n".join(lines) + f"\r\n{extra}Content-Length: 0\r\n\r\n"
    message = parse_message(text.encode(), stream=True)
    assert isinstance(message, Response)
    return message
