"""Trace records as a pcap capture (sans-IO), so sngrep, Wireshark and HOMER's importers
read a node's trace: each message becomes IPv4 packets with a UDP or TCP header built from
the record's addresses (TLS flows are written as the plaintext they carried)."""

from __future__ import annotations

import functools
import ipaddress
import struct

from intrafed.observe.trace import Address, TraceRecord

LINKTYPE_RAW = 101
"""Packets start at the IPv4 header."""
SNAPLEN = 65535
_MAX_SEGMENT = 65535 - 20 - 20
"""Payload bytes one IPv4 packet with a TCP header holds."""
_TCP_PSH_ACK = 0x18


def file_header() -> bytes:
    """The pcap global header (microsecond timestamps)."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


@functools.lru_cache(maxsize=4096)
def _packed(ip: str) -> bytes | None:
    """The four bytes of an IPv4 address; None for anything else (a node sees few
    addresses, so each is parsed once)."""
    try:
        return ipaddress.IPv4Address(ip).packed
    except ValueError:
        return None


def _ipv4(source: Address, destination: Address, protocol: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        0x4000,  # don't fragment
        64,
        protocol,
        0,
        _packed(source[0]),
        _packed(destination[0]),
    )
    checksum = _checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


class PcapEncoder:
    """Turns records into pcap packet records, keeping TCP sequence numbers per direction
    of each flow so a dissector can follow the stream."""

    def __init__(self) -> None:
        self._next_seq: dict[tuple[Address, Address], int] = {}

    def packets(self, record: TraceRecord) -> bytes:
        """The pcap records of one trace record (several when a TCP message is larger
        than one packet); empty for an address that is not IPv4."""
        if record.direction == "in":
            source, destination = record.remote, record.local
        else:
            source, destination = record.local, record.remote
        if _packed(source[0]) is None or _packed(destination[0]) is None:
            return b""
        seconds, micros = int(record.at), int((record.at % 1) * 1_000_000)
        if record.transport == "UDP":
            udp = struct.pack("!HHHH", source[1], destination[1], 8 + len(record.message), 0)
            packet = _ipv4(source, destination, 17, udp + record.message[: SNAPLEN - 28])
            return _record(seconds, micros, packet)
        out = []
        flow = (source, destination)
        for start in range(0, max(len(record.message), 1), _MAX_SEGMENT):
            segment = record.message[start : start + _MAX_SEGMENT]
            seq = self._next_seq.get(flow, 1)
            self._next_seq[flow] = (seq + len(segment)) & 0xFFFFFFFF
            ack = self._next_seq.get((destination, source), 1)
            tcp = struct.pack(
                "!HHIIBBHHH", source[1], destination[1], seq, ack, 5 << 4, _TCP_PSH_ACK, 65535, 0, 0
            )
            out.append(_record(seconds, micros, _ipv4(source, destination, 6, tcp + segment)))
        return b"".join(out)


def _record(seconds: int, micros: int, packet: bytes) -> bytes:
    return struct.pack("<IIII", seconds, micros, len(packet), len(packet)) + packet
