"""StreamFramer: cutting a TCP/TLS byte stream into messages, keepalives and limits."""

from __future__ import annotations

import csv
import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intrafed.sip import FramingError, RemoteSipError, Request, StreamFramer, parse_message
from tests.paths import CONFORMANCE
from tests.sip.strategies import sip_messages

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PING = b"\r\n\r\n"
CRLF = b"\r\n"


def make_message(
    call_id: str = "c1", body: bytes = b"", *, length: bytes | None = None, extra: bytes = b""
) -> bytes:
    """A small valid MESSAGE request; ``length`` overrides the Content-Length text."""
    length_line = (
        b""
        if length == b""
        else b"Content-Length: %s\r\n" % (str(len(body)).encode() if length is None else length)
    )
    return (
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP client.example.com;branch=z9hG4bK" + call_id.encode() + b"\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\n"
        b"Call-ID: " + call_id.encode() + b"\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"Max-Forwards: 70\r\n" + extra + length_line + b"\r\n" + body
    )


def feed(framer: StreamFramer, chunks: list[bytes]) -> tuple[list[bytes], int]:
    """Feed chunks, draining frames after each; return the frames and the pongs owed."""
    frames: list[bytes] = []
    pongs = b""
    for chunk in chunks:
        framer.receive_data(chunk)
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
        pongs += framer.data_to_send()
    assert pongs == CRLF * (len(pongs) // 2)
    return frames, len(pongs) // 2


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def framing_error(chunks: list[bytes], **limits: int) -> FramingError:
    framer = StreamFramer(**limits)
    with pytest.raises(FramingError) as caught:
        feed(framer, chunks)
    return caught.value


# --- streams of generated messages ----------------------------------------------------------

# What may sit between two messages: some pings, and at most one stray CRLF before or after
# them (two stray CRLFs side by side are a ping). Each gap owes one pong per ping.
gaps = st.tuples(st.integers(0, 2), st.sampled_from(["none", "before", "after"])).map(
    lambda gap: (
        (CRLF if gap[1] == "before" else b"")
        + PING * gap[0]
        + (CRLF if gap[1] == "after" else b""),
        gap[0],
    )
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    """(stream bytes, the frames in it, the pings in it)."""
    messages = [
        g.message.to_bytes() for g in draw(st.lists(sip_messages(), min_size=1, max_size=4))
    ]
    data = b""
    pings = 0
    for message in messages:
        gap, count = draw(gaps)
        data += gap + message
        pings += count
    gap, count = draw(gaps)
    return data + gap, messages, pings + count


@SETTINGS
@given(streams(), st.data())
def test_generated_stream_frames_identically_however_it_is_chunked(
    stream: tuple[bytes, list[bytes], int], data: st.DataObject
) -> None:
    raw, messages, pings = stream
    points = data.draw(st.lists(st.integers(0, len(raw)), max_size=12), label="split points")
    chunkings = {
        "whole": [raw],
        "one byte at a time": [raw[i : i + 1] for i in range(len(raw))],
        "random splits": split_at(raw, points),
    }
    for name, chunks in chunkings.items():
        framer = StreamFramer()
        frames, pongs = feed(framer, chunks)
        assert frames == messages, name
        assert pongs == pings, name
        assert not framer.has_partial_message, name


@SETTINGS
@given(streams())
def test_every_frame_of_a_generated_stream_parses_back_to_its_message(
    stream: tuple[bytes, list[bytes], int],
) -> None:
    raw, messages, _ = stream
    frames, _ = feed(StreamFramer(), [raw])
    assert [parse_message(frame, stream=True).to_bytes() for frame in frames] == messages


def test_many_messages_in_one_chunk_beyond_the_compaction_threshold() -> None:
    messages = [make_message(f"m{i}", bytes([i % 256]) * (i * 37 % 900)) for i in range(400)]
    raw = b"".join(m + (PING if i % 7 == 0 else b"") for i, m in enumerate(messages))
    assert len(raw) > 128 * 1024
    for size in (len(raw), 65536, 4093, 1000):
        frames, pongs = feed(StreamFramer(), split_at(raw, list(range(size, len(raw), size))))
        assert frames == messages, size
        assert pongs == len(range(0, 400, 7)), size


# --- keepalives -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks",
    [
        [PING],
        [b"\r\n", b"\r\n"],
        [b"\r", b"\n\r\n"],
        [b"\r\n\r", b"\n"],
        [b"\r", b"\n", b"\r", b"\n"],
    ],
    ids=["whole", "crlf+crlf", "cr+lfcrlf", "crlfcr+lf", "byte-by-byte"],
)
def test_one_ping_gets_exactly_one_pong_however_it_is_split(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    frames, pongs = feed(framer, chunks)
    assert (frames, pongs) == ([], 1)
    assert framer.data_to_send() == b""
    assert not framer.has_partial_message


def test_pong_is_owed_once_and_data_to_send_empties() -> None:
    framer = StreamFramer()
    framer.receive_data(PING * 3)
    assert framer.next_frame() is None
    assert framer.data_to_send() == CRLF * 3
    assert framer.data_to_send() == b""
    assert framer.next_frame() is None
    assert framer.data_to_send() == b""


def test_pings_between_messages_are_answered_and_stray_crlfs_ignored() -> None:
    first, second = make_message("a"), make_message("b", b"hi")
    raw = CRLF + first + PING + CRLF + second + PING + PING
    for chunks in ([raw], [raw[i : i + 1] for i in range(len(raw))]):
        assert feed(StreamFramer(), chunks) == ([first, second], 3)


def test_lone_stray_crlf_owes_no_pong() -> None:
    message = make_message()
    assert feed(StreamFramer(), [CRLF + message + CRLF]) == ([message], 0)


# --- has_partial_message --------------------------------------------------------------------


def test_has_partial_message_mid_message_and_not_after_a_complete_one() -> None:
    message = make_message(body=b"hello")
    framer = StreamFramer()
    assert not framer.has_partial_message
    framer.receive_data(message[:20])
    assert framer.next_frame() is None
    assert framer.has_partial_message
    framer.receive_data(message[20:-1])
    assert framer.next_frame() is None
    assert framer.has_partial_message
    framer.receive_data(message[-1:])
    assert framer.next_frame() == message
    assert not framer.has_partial_message


@pytest.mark.parametrize("prefix", [b"\r", b"\r\n", b"\r\n\r"])
def test_has_partial_message_false_for_a_ping_prefix(prefix: bytes) -> None:
    framer = StreamFramer()
    framer.receive_data(prefix)
    assert not framer.has_partial_message
    assert framer.next_frame() is None
    assert not framer.has_partial_message
    assert framer.data_to_send() == b""


def test_has_partial_message_false_after_message_followed_by_ping_prefix() -> None:
    message = make_message()
    framer = StreamFramer()
    framer.receive_data(message + b"\r\n\r")
    assert framer.next_frame() == message
    assert framer.next_frame() is None
    assert not framer.has_partial_message


# --- limits ---------------------------------------------------------------------------------


def test_header_section_over_the_limit_is_513() -> None:
    message = make_message()
    error = framing_error([message], max_header_bytes=len(message) - 1)
    assert error.status == 513
    assert error.head == message[: len(message) - 1]


def test_header_section_over_the_limit_is_513_before_it_ends() -> None:
    start = b"MESSAGE sip:bob@example.com SIP/2.0\r\nX-Long: " + b"a" * 200
    assert framing_error([start], max_header_bytes=100).status == 513


def test_start_line_over_the_header_limit_is_513() -> None:
    assert framing_error([b"MESSAGE sip:" + b"a" * 200], max_header_bytes=100).status == 513


def test_header_section_exactly_at_the_limit_is_framed() -> None:
    message = make_message()
    assert feed(StreamFramer(max_header_bytes=len(message)), [message]) == ([message], 0)


def test_content_length_over_the_body_limit_is_513() -> None:
    error = framing_error([make_message(length=b"101")], max_body_bytes=100)
    assert error.status == 513
    assert "101" in error.reason


def test_content_length_at_the_body_limit_is_framed() -> None:
    message = make_message(body=b"x" * 100)
    assert feed(StreamFramer(max_body_bytes=100), [message]) == ([message], 0)


def test_huge_content_length_is_513_not_an_overflow() -> None:
    assert framing_error([make_message(length=b"36893488147419103232")]).status == 513


# --- unframeable streams --------------------------------------------------------------------


@pytest.mark.parametrize(
    "length",
    [b"-999", b"five", b"1.5", b"0x10", b""],
    ids=["negative", "word", "decimal", "hex", "empty"],
)
def test_unusable_content_length_is_400(length: bytes) -> None:
    error = framing_error([make_message(extra=b"Content-Length: " + length + b"\r\n", length=b"")])
    assert error.status == 400
    assert "Content-Length" in error.reason


def test_two_content_length_headers_are_400_even_when_equal() -> None:
    error = framing_error([make_message(extra=b"l: 0\r\n")])
    assert error.status == 400
    assert "Content-Length" in error.reason


@pytest.mark.parametrize(
    "garbage",
    [
        b"C\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"\x00\xff\xfe binary junk \x01\x02\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\n",
        b"INVITE sip:bob@example.com\r\n\r\n",
    ],
    ids=["dblreq-tail", "http", "binary", "tls-client-hello", "no-version"],
)
def test_garbage_start_line_is_a_framing_error(garbage: bytes) -> None:
    error = framing_error([garbage])
    assert error.status == 400
    assert garbage.startswith(error.head[:4])


def test_tls_client_hello_fails_before_any_line_feed_arrives() -> None:
    # A TLS client on the plain TCP port sends its ClientHello and waits for the server:
    # no LF may ever come, and 0x16 can never begin a SIP start line.
    framer = StreamFramer()
    framer.receive_data(b"\x16\x03\x01\x02\x00\x01")
    with pytest.raises(FramingError):
        framer.next_frame()


def test_garbage_after_a_good_message_fails_after_the_message() -> None:
    message = make_message()
    framer = StreamFramer()
    framer.receive_data(message + b"C\r\n\r\n")
    assert framer.next_frame() == message
    with pytest.raises(FramingError) as caught:
        framer.next_frame()
    assert caught.value.head == b"C\r\n\r\n"


def test_errored_framer_keeps_raising_and_ignores_new_data() -> None:
    framer = StreamFramer()
    framer.receive_data(make_message(length=b"-1"))
    with pytest.raises(FramingError) as first:
        framer.next_frame()
    framer.receive_data(make_message())
    for _ in range(3):
        with pytest.raises(FramingError) as again:
            framer.next_frame()
        assert (again.value.status, again.value.reason) == (first.value.status, first.value.reason)


def test_message_without_content_length_is_framed_bodyless_and_rejected_by_the_parser() -> None:
    message = make_message(length=b"")
    framer = StreamFramer()
    framer.receive_data(message + message)
    assert framer.next_frame() == message
    assert framer.next_frame() == message
    assert framer.next_frame() is None
    with pytest.raises(RemoteSipError, match="Content-Length") as caught:
        parse_message(message, stream=True)
    assert caught.value.status == 400


def test_folded_content_length_is_framed_like_the_parser_reads_it() -> None:
    # HCOLON = *( SP / HTAB ) ":" SWS, and SWS may be a folded line (RFC 3261 §7.3.1,
    # RFC 4475 wsinv folds almost every header): the value is still 5.
    message = make_message(extra=b"Content-Length:\r\n 5\r\n", length=b"", body=b"hello")
    assert parse_message(message, stream=True).body == b"hello"
    assert feed(StreamFramer(), [message]) == ([message], 0)


# --- the RFC 4475 / RFC 5118 corpus ---------------------------------------------------------


def frames_until_error(chunks: list[bytes]) -> tuple[list[bytes], FramingError | None]:
    """Feed chunks, collecting frames, until the framer raises (or the chunks run out)."""
    framer = StreamFramer()
    frames: list[bytes] = []
    for chunk in chunks:
        framer.receive_data(chunk)
        try:
            while (frame := framer.next_frame()) is not None:
                frames.append(frame)
        except FramingError as exc:
            return frames, exc
    return frames, None


def test_dblreq_on_a_stream_is_register_then_invite_then_a_framing_error() -> None:
    # RFC 4475 §3.1.1.8: on TCP the "trailing octets" are a pipelined INVITE (Content-Length
    # 150 ends inside its last SDP line), after a stray CRLF; the leftover "C\r\n\r\n" is
    # garbage where a start line should be.
    raw = (CONFORMANCE / "rfc4475" / "dblreq.dat").read_bytes()
    for chunks in ([raw], [raw[i : i + 1] for i in range(len(raw))]):
        frames, error = frames_until_error(chunks)
        assert error is not None
        assert error.status == 400
        assert error.head in (b"C\r\n", b"C\r\n\r\n")
        assert len(frames) == 2
        register, invite = frames
        assert register.startswith(b"REGISTER sip:example.com SIP/2.0\r\n")
        assert invite.startswith(b"INVITE sip:joe@example.com SIP/2.0\r\n")
        assert register + CRLF + invite + b"C\r\n\r\n" == raw
        parsed_register = parse_message(register, stream=True)
        parsed_invite = parse_message(invite, stream=True)
        assert isinstance(parsed_register, Request)
        assert isinstance(parsed_invite, Request)
        assert (parsed_register.method, parsed_register.body) == ("REGISTER", b"")
        assert (parsed_invite.method, len(parsed_invite.body)) == ("INVITE", 150)


def _stream_handling() -> list[tuple[str, str, bytes]]:
    """(file, what MANIFEST.tsv says a TCP/TLS server does with it, bytes) for RFC 4475."""
    cases = []
    with (CONFORMANCE / "rfc4475" / "MANIFEST.tsv").open(newline="") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            handling = row["stream_transport_handling(TCP/TLS)"]
            if "timeout" in handling:
                expect = "wait"
            elif "keep connection" in handling:
                expect = "frame"
            else:
                expect = "close"
            cases.append(
                (row["file"], expect, (CONFORMANCE / "rfc4475" / row["file"]).read_bytes())
            )
    return cases


STREAM_HANDLING = _stream_handling()


@pytest.mark.parametrize(
    ("name", "expect", "data"), STREAM_HANDLING, ids=[name for name, _, _ in STREAM_HANDLING]
)
def test_rfc4475_message_on_a_stream_is_handled_as_the_manifest_says(
    name: str, expect: str, data: bytes
) -> None:
    # "keep connection open": one frame, the whole file, so the server can answer it and
    # read on; "close": the framer gives up (after any frames before the bad part);
    # "timeout": the framer waits for bytes that never come.
    framer = StreamFramer()
    framer.receive_data(data)
    frames: list[bytes] = []
    try:
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
    except FramingError:
        outcome = "close"
    else:
        outcome = "wait" if framer.has_partial_message else "frame"
    assert outcome == expect, frames
    if expect == "frame":
        assert frames == [data]


def _valid_corpus() -> list[tuple[str, bytes]]:
    files = []
    for suite in ("rfc4475", "rfc5118"):
        with (CONFORMANCE / suite / "VERDICTS.tsv").open(newline="") as table:
            for row in csv.DictReader(table, delimiter="\t"):
                if row["verdict"] == "valid":
                    files.append(
                        (f"{suite}/{row['file']}", (CONFORMANCE / suite / row["file"]).read_bytes())
                    )
    return files


_LENGTH_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([0-9]+)[ \t]*\r$", re.I | re.M)


def _frames_exactly(data: bytes) -> bool:
    """One Content-Length header whose value is exactly the rest after the header section."""
    head, separator, body = data.partition(b"\r\n\r\n")
    lengths = _LENGTH_RE.findall(head + b"\r")
    return bool(separator) and len(lengths) == 1 and int(lengths[0]) == len(body)


VALID_CORPUS = _valid_corpus()
FRAMEABLE_CORPUS = [(name, data) for name, data in VALID_CORPUS if _frames_exactly(data)]


def test_corpus_filter_leaves_out_only_dblreq_and_inv2543() -> None:
    left_out = sorted(name for name, data in VALID_CORPUS if not _frames_exactly(data))
    # dblreq carries a second request after its Content-Length (tested above); inv2543 is
    # an RFC 2543 request with no Content-Length at all.
    assert left_out == ["rfc4475/dblreq.dat", "rfc4475/inv2543.dat"]
    assert len(FRAMEABLE_CORPUS) == 36


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_valid_corpus_concatenated_frames_identically_under_random_chunking(
    data: st.DataObject,
) -> None:
    raw = b"".join(message for _, message in FRAMEABLE_CORPUS)
    points = data.draw(st.lists(st.integers(0, len(raw)), max_size=40), label="split points")
    frames, pongs = feed(StreamFramer(), split_at(raw, points))
    assert frames == [message for _, message in FRAMEABLE_CORPUS]
    assert pongs == 0


def test_valid_corpus_frames_one_byte_at_a_time_and_each_frame_parses() -> None:
    raw = b"".join(message for _, message in FRAMEABLE_CORPUS)
    frames, _ = feed(StreamFramer(), [raw[i : i + 1] for i in range(len(raw))])
    assert frames == [message for _, message in FRAMEABLE_CORPUS]
    for frame in frames:
        parse_message(frame, stream=True).validate()
