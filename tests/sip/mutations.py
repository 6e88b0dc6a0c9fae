"""Byte-level mutations of SIP messages for the fuzz targets: flips, insertions of the bytes
the grammar cares about, deletions, truncations and duplicated slices."""

from __future__ import annotations

import random

from tests.paths import CONFORMANCE

# Bytes that steer the grammar: line ends, LWS, separators, quotes, brackets, escapes,
# control characters and bytes that are not UTF-8.
SPECIAL = b'\r\n \t:;,=<>"\\%@[]/?\x00\x01\x7f\x80\xc3\xff'


def corpus() -> list[bytes]:
    """The RFC 4475 and RFC 5118 messages, sorted by name (valid and invalid alike)."""
    files = sorted((CONFORMANCE / "rfc4475").glob("*.dat"))
    files += sorted((CONFORMANCE / "rfc5118").glob("*.dat"))
    return [path.read_bytes() for path in files]


def mutate(data: bytes, rng: random.Random, rounds: int = 1) -> bytes:
    """``data`` with ``rounds`` random mutations applied."""
    buffer = bytearray(data)
    for _ in range(rounds):
        position = rng.randrange(len(buffer) + 1)
        kind = rng.randrange(6)
        if kind == 0 and buffer and position < len(buffer):
            buffer[position] ^= 1 << rng.randrange(8)
        elif kind == 1:
            run = bytes([rng.choice(SPECIAL)]) * rng.choice((1, 2, 3, 64, 1000))
            buffer[position:position] = run
        elif kind == 2:
            del buffer[position : position + rng.randrange(1, 16)]
        elif kind == 3:
            del buffer[position:]
        elif kind == 4:
            end = min(len(buffer), position + rng.randrange(1, 200))
            buffer[position:position] = buffer[position:end] * rng.randrange(1, 4)
        elif buffer and position < len(buffer):
            buffer[position] = rng.choice(SPECIAL)
    return bytes(buffer)
