"""Bad input never escapes as anything but RemoteSipError (reliability matrix A15-A19, FZ).

Every corpus message truncated at every offset, bytes flipped at random, and field-count
bombs inside the size limits: the parser and the framer answer with the documented error
or a message, never another exception and never a recursion error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrafed.sip import FramingError, RemoteSipError, StreamFramer, parse_message
from tests.paths import CONFORMANCE, EXAMPLES

CORPUS = sorted([*CONFORMANCE.glob("rfc4475/*.dat"), *CONFORMANCE.glob("rfc5118/*.dat")])
SEEDS = [path.read_bytes() for path in [*CORPUS, *sorted(EXAMPLES.glob("*.sip"))]]


def parse_fully(data: bytes, *, stream: bool = False) -> None:
    error: RemoteSipError | None = None
    try:
        parse_message(data, stream=stream).validate()
    except RemoteSipError as exc:
        error = exc
    if error is not None:
        assert 400 <= error.status <= 599
        assert error.reason


def frame_all(data: bytes) -> None:
    framer = StreamFramer()
    framer.receive_data(data)
    error: FramingError | None = None
    try:
        while (frame := framer.next_frame()) is not None:
            parse_fully(frame, stream=True)
    except FramingError as exc:
        error = exc
    if error is not None:
        assert error.status in (400, 513)


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_every_truncation_of_a_corpus_message_is_handled(path: Path) -> None:
    data = path.read_bytes()
    for end in range(len(data) + 1):
        parse_fully(data[:end])
        frame_all(data[:end])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_flipped_bytes_are_handled(seed: bytes, data: st.DataObject) -> None:
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    parse_fully(bytes(mutated))
    frame_all(bytes(mutated))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_are_handled(data: bytes) -> None:
    parse_fully(data)
    frame_all(data)


REQUEST_HEAD = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP client.example.com;branch=z9hG4bK1\r\n"
    "To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
    "Call-ID: bomb@client\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
)


def bomb(extra: str) -> bytes:
    return (REQUEST_HEAD + extra + "Content-Length: 0\r\n\r\n").encode()


def test_five_thousand_headers_parse() -> None:
    message = parse_message(bomb("".join(f"X-H{i}: v\r\n" for i in range(5000))))
    message.validate()
    assert len(message.headers) == 5007


def test_a_thousand_vias_parse() -> None:
    values = (f"SIP/2.0/TCP h{i}.example.com;branch=z9hG4bK{i}" for i in range(1000))
    vias = "Via: " + ", ".join(values)
    message = parse_message(bomb(vias + "\r\n"))
    assert len(message.vias) == 1001


def test_deep_quotes_and_angle_brackets_do_not_recurse() -> None:
    contact = "Contact: " + '"' * 2001 + "<" * 2000 + "\r\n"
    with pytest.raises(RemoteSipError, match="Contact"):
        parse_message(bomb(contact)).validate()


def test_ten_thousand_parameters_parse() -> None:
    params = "".join(f";p{i}" for i in range(10000))
    message = parse_message(bomb(f"Record-Route: <sip:proxy.example.com;lr>{params}\r\n"))
    assert len(message.record_routes[0].params) == 10000


def test_long_values_keep_their_bytes() -> None:
    call_id = "c" * 4096
    message = parse_message(bomb("").replace(b"bomb@client", call_id.encode()))
    assert message.call_id == call_id
