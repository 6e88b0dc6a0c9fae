"""Fuzz target for the framer and the parser: mutated valid messages and mutated RFC 4475 /
RFC 5118 torture messages raise nothing but the documented ``RemoteSipError`` family.

Bounded for CI: a few hundred examples, each a few mutations of one message.
"""

from __future__ import annotations

import contextlib
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intrafed.sip import Request, StreamFramer, parse_message
from intrafed.sip.digest import parse_challenge, parse_credentials
from intrafed.sip.errors import FramingError, RemoteSipError
from intrafed.sip.responses import local_tag, make_response, response_to_unparsable
from intrafed.sip.transaction import client_key, server_key
from tests.sip.mutations import corpus, mutate
from tests.sip.strategies import sip_messages

_CORPUS = corpus()
_FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def exercise(data: bytes, split: int) -> None:
    """What the node does with bytes from the network before its handlers run, and the
    typed values the handlers read: only the documented errors may escape."""
    framer = StreamFramer()
    framer.receive_data(data[:split])
    frames = []
    with contextlib.suppress(FramingError):
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
        framer.receive_data(data[split:])
        while (frame := framer.next_frame()) is not None:
            frames.append(frame)
    for raw, stream in [(data, False), *((frame, True) for frame in frames)]:
        try:
            message = parse_message(raw, stream=stream)
        except RemoteSipError as exc:
            response_to_unparsable(raw, exc.status, exc.reason, "fuzz.example.com")
            continue
        message.to_bytes()
        client_key(message)
        with contextlib.suppress(RemoteSipError):
            message.validate()
        for name in ("authorization", "proxy-authorization"):
            for value in message.headers.get_all(name):
                with contextlib.suppress(RemoteSipError):
                    parse_credentials(value)
        for name in ("www-authenticate", "proxy-authenticate"):
            for value in message.headers.get_all(name):
                with contextlib.suppress(RemoteSipError):
                    parse_challenge(value)
        if isinstance(message, Request):
            key = server_key(message)
            make_response(message, 400, "fuzz", to_tag=local_tag(*key)).to_bytes()
            message.received_from("192.0.2.1", 5060).to_bytes()


@_FUZZ
@given(st.sampled_from(_CORPUS), st.randoms(use_true_random=False), st.integers(1, 6), st.data())
def test_mutated_torture_messages_raise_only_sip_errors(
    original: bytes, rng: random.Random, rounds: int, data: st.DataObject
) -> None:
    mutated = mutate(original, rng, rounds)
    exercise(mutated, data.draw(st.integers(0, len(mutated))))


@_FUZZ
@given(sip_messages(), st.randoms(use_true_random=False), st.integers(1, 6), st.data())
def test_mutated_valid_messages_raise_only_sip_errors(
    generated: object, rng: random.Random, rounds: int, data: st.DataObject
) -> None:
    mutated = mutate(generated.message.to_bytes(), rng, rounds)  # type: ignore[attr-defined]
    exercise(mutated, data.draw(st.integers(0, len(mutated))))
