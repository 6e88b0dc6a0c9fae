"""The sans-IO SIP message layer: URIs, headers, messages, parsing and stream framing.

No asyncio, sockets, ssl or clocks here: bytes and plain values in, values and bytes out.
"""

from intrafed.sip.errors import FramingError, LocalSipError, RemoteSipError
from intrafed.sip.framing import StreamFramer
from intrafed.sip.header_values import CSeq, MediaType, NameAddr, TokenWithParams, Via
from intrafed.sip.headers import Headers
from intrafed.sip.message import Message, Request, Response
from intrafed.sip.parser import parse_message
from intrafed.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri, uri_equivalent

__all__ = [
    "AbsoluteUri",
    "CSeq",
    "FramingError",
    "Headers",
    "LocalSipError",
    "MediaType",
    "Message",
    "NameAddr",
    "RemoteSipError",
    "Request",
    "Response",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "TokenWithParams",
    "Uri",
    "Via",
    "parse_message",
    "parse_uri",
    "uri_equivalent",
]
