"""Parser throughput: intrafed.sip beside the PyPI package ``sipmessage`` on the same inputs.

Three workloads per message, in messages per second (best of several rounds):
  (a) proxy: parse, then read what a proxy needs (every Via with its branch, From tag,
      To, Call-ID, CSeq, Route, Max-Forwards, Content-Length);
  (b) full:  parse, then every header each library knows as a typed value (for headers
      intrafed keeps untyped, the comma-separated elements);
  (c) round trip: parse, then serialize.
Targets (issue: foundation): (a) >= 2x sipmessage, (b) >= 1x.

Run from the repository root: .venv/bin/python -m bench.parse [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from intrafed.sip import Request, Response, parse_message
from intrafed.sip.headers import LIST_HEADERS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INPUTS = {"MESSAGE": EXAMPLES / "message.sip", "INVITE": EXAMPLES / "invite.sip"}
SIPMESSAGE_PROPERTIES = [
    *("accept", "authorization", "call_id", "contact", "content_language", "content_length"),
    *("content_type", "cseq", "date", "expires", "from_address", "in_reply_to"),
    *("max_forwards", "min_expires", "proxy_authenticate", "proxy_authorization"),
    *("proxy_require", "record_route", "require", "route", "server", "subject", "supported"),
    *("to_address", "unsupported", "user_agent", "via", "www_authenticate"),
]


def ours_proxy(data: bytes) -> object:
    message = parse_message(data)
    return (
        [via.branch for via in message.vias],
        message.from_addr.tag,
        message.to_addr,
        message.call_id,
        message.cseq,
        message.routes,
        message.max_forwards,
        message.content_length,
    )


def ours_full(data: bytes) -> object:
    message = parse_message(data)
    message.validate()
    return [
        message.headers.get_list(name) for name in message.headers.names() if name in LIST_HEADERS
    ]


def ours_round_trip(data: bytes) -> bytes:
    message: Request | Response = parse_message(data)
    return message.to_bytes()


def sipmessage_workloads() -> dict[str, Callable[[bytes], object]]:
    from sipmessage import Message

    def proxy(data: bytes) -> object:
        message = Message.parse(data)
        return (
            [via.parameters.get("branch") for via in message.via],
            message.from_address.parameters.get("tag"),
            message.to_address,
            message.call_id,
            message.cseq,
            message.route,
            message.max_forwards,
            message.content_length,
        )

    def full(data: bytes) -> object:
        message = Message.parse(data)
        return [getattr(message, name) for name in SIPMESSAGE_PROPERTIES]

    def round_trip(data: bytes) -> bytes:
        return bytes(Message.parse(data))

    return {"a proxy": proxy, "b full": full, "c round trip": round_trip}


def rate(work: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Messages per second: the best of five rounds of ``seconds / 5`` each."""
    work(data)
    best = 0.0
    for _ in range(5):
        count = 0
        started = time.perf_counter()
        deadline = started + seconds / 5
        while True:
            for _ in range(200):
                work(data)
            count += 200
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - started))
    return best


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--seconds", type=float, default=2.5, help="time per measurement")
    options = arguments.parse_args()
    ours = {"a proxy": ours_proxy, "b full": ours_full, "c round trip": ours_round_trip}
    theirs = sipmessage_workloads()
    header = f"{'message':8} {'workload':13} {'intrafed msg/s':>15} {'sipmessage msg/s':>17}"
    print(f"{header} {'ratio':>6}")
    for label, path in INPUTS.items():
        data = path.read_bytes()
        for workload, function in ours.items():
            mine = rate(function, data, options.seconds)
            try:
                other = rate(theirs[workload], data, options.seconds)
                other_text, ratio_text = f"{other:17,.0f}", f"{mine / other:6.2f}"
            except ValueError as exc:
                other_text, ratio_text = f"{'fails: ' + str(exc)[:10]:>17}", "   n/a"
            print(
                f"{label} ({len(data)} B)".ljust(8),
                f"{workload:13} {mine:15,.0f} {other_text} {ratio_text}",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
