"""Trace files: JSON lines and pcap side by side, rotation, reading back, following; the
pcap is checked by tcpdump, an independent reader."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from intrafed.observe.trace import TraceFilter, TraceRecord
from intrafed.observe.trace_files import CAPTURE, RECORDS, TraceWriter, follow, read_records
from tests.observe.test_trace import IMP, OCS, record, sip_message


def test_records_read_back_oldest_first_across_rotations(tmp_path: Path) -> None:
    writer = TraceWriter(tmp_path, max_bytes=2_000, generations=3)
    written = [
        record("ocs1.example.com", "out", OCS, IMP, sip_message(call_id=f"c{n}")) for n in range(30)
    ]
    for item in written:
        writer.write(item)
    writer.close()
    rotated = sorted(path.name for path in tmp_path.iterdir())
    assert f"{RECORDS}.3" in rotated
    assert f"{CAPTURE}.3" in rotated
    assert f"{RECORDS}.4" not in rotated
    kept = list(read_records(tmp_path))
    assert kept == written[-len(kept) :]
    assert len(kept) < len(written)


def test_a_filter_keeps_only_matching_messages(tmp_path: Path) -> None:
    writer = TraceWriter(tmp_path, TraceFilter(user="carol"))
    writer.write(record("n", "in", OCS, IMP, sip_message(user="alice")))
    writer.write(record("n", "in", OCS, IMP, sip_message(user="carol")))
    writer.close()
    assert [b"carol" in r.message for r in read_records(tmp_path)] == [True]


def test_a_damaged_line_is_skipped_and_named(tmp_path: Path) -> None:
    writer = TraceWriter(tmp_path)
    writer.write(record("n", "in", OCS, IMP, sip_message()))
    writer.close()
    with (tmp_path / RECORDS).open("a") as damaged:
        damaged.write('{"half a record\n')
    bad: list[str] = []
    assert len(list(read_records(tmp_path, bad))) == 1
    assert bad == [f"{RECORDS}:2"]


def test_tcpdump_reads_the_capture_as_sip_over_tcp_and_udp(tmp_path: Path) -> None:
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump reads the capture here: apt-get install tcpdump (./dev test does)")
    writer = TraceWriter(tmp_path)
    writer.write(record("ocs1.example.com", "out", OCS, IMP, sip_message()))
    big = sip_message() + b"x" * 70_000  # more than one IPv4 packet
    writer.write(record("ocs1.example.com", "out", OCS, IMP, big))
    writer.write(
        TraceRecord(1_800_000_001.0, "ocs1.example.com", "in", "UDP", OCS, IMP, sip_message())
    )
    writer.close()
    shown = subprocess.run(
        ["tcpdump", "-nn", "-r", str(tmp_path / CAPTURE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    assert len(shown) == 4
    assert "127.0.0.2.5060 > 127.0.0.3.5061: Flags [P.], seq 1:" in shown[0]
    assert "UDP" in shown[3] or "SIP" in shown[3]
    assert "127.0.0.3.5061 > 127.0.0.2.5060" in shown[3]
    assert "bad" not in " ".join(shown)


def test_follow_sees_new_records_and_survives_a_rotation(tmp_path: Path) -> None:
    line = len(record("n", "in", OCS, IMP, sip_message(call_id="new0")).to_json_line()) + 1
    # One rotation while following (after the 4th record): a follower loses nothing then.
    writer = TraceWriter(tmp_path, max_bytes=4 * line)
    writer.write(record("n", "in", OCS, IMP, sip_message(call_id="hist")))
    writer.flush()
    seen: list[str] = []
    done = threading.Event()

    following = follow(tmp_path, stop=done.is_set, poll=0.01)

    def reader() -> None:
        for item in following:
            seen.append(item.message.split(b"Call-ID: ")[1].split(b"\r\n")[0].decode())
            if len(seen) == 6:
                done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(6):
        writer.write(record("n", "in", OCS, IMP, sip_message(call_id=f"new{n}")))
        writer.flush()
    thread.join(timeout=20)
    done.set()
    writer.close()
    assert seen == [f"new{n}" for n in range(6)]
    assert (tmp_path / f"{RECORDS}.1").exists()
    assert not (tmp_path / f"{RECORDS}.2").exists()


def test_a_record_between_ipv6_addresses_is_left_out_of_the_capture_only() -> None:
    from intrafed.observe.pcap import PcapEncoder

    ipv6 = TraceRecord(1.0, "n", "in", "TCP", ("::1", 5060), ("::1", 40000), sip_message())
    assert PcapEncoder().packets(ipv6) == b""
    assert TraceRecord.from_json_line(ipv6.to_json_line()) == ipv6
