"""A connection between the partitions that closes with a relayed request on the wire,
unread (on the fake clock of ``bench.loopback``): when the closing side ended it cleanly
(a draining process's TLS close_notify) the request goes again over a new connection and
is answered; when the connection died, it fails with 500 and is never sent again."""

from __future__ import annotations

from collections import deque

from bench.loopback import End, Federation, message, pump, registered
from intrafed.sip import Request


def relayed_on_the_wire(fed: Federation, call_id: str) -> End:
    """Run until imp1 has written the MESSAGE toward ocs1; ocs1's end of that connection."""
    for _ in range(1000):
        for part in (fed.ocs, fed.imp):
            part.run_actions()
        for end, data in fed.network.wire:
            if end.holder is fed.ocs and data.startswith(b"MESSAGE ") and call_id.encode() in data:
                return end
        assert fed.network.deliver_one()
    raise AssertionError("the MESSAGE never left imp1")


def close_unread(fed: Federation, ocs_end: End, *, clean: bool) -> None:
    """ocs1 closes the connection without reading what is in flight toward it."""
    imp_end = ocs_end.other
    assert imp_end is not None
    fed.network.wire = deque((end, data) for end, data in fed.network.wire if end is not ocs_end)
    ocs_end.closed = imp_end.closed = True
    now = fed.clock.now
    fed.ocs.core.flow_closed(ocs_end.flow, now)
    fed.imp.core.flow_closed(imp_end.flow, now, clean=clean)


def closed_with_a_message_unread(*, clean: bool) -> tuple[Federation, Request, int]:
    """alice's MESSAGE to bob is on the wire to ocs1 when ocs1 closes that connection;
    the federation once nothing moves, the MESSAGE, and how many copies bob got."""
    fed = registered()
    sent = message(fed.alice, "bob@example.com")
    fed.alice.send(sent)
    close_unread(fed, relayed_on_the_wire(fed, sent.call_id), clean=clean)
    pump(fed.ocs, fed.imp, fed.clock)
    copies = [m for m in fed.bob.requests("MESSAGE") if m.call_id == sent.call_id]
    return fed, sent, len(copies)


def test_a_request_a_cleanly_closed_connection_left_unread_is_sent_again_and_answered() -> None:
    fed, sent, copies = closed_with_a_message_unread(clean=True)
    assert fed.alice.final_response(sent).status == 200
    assert copies == 1
    [line] = [line for line in fed.imp.log if "sent again" in line]
    assert line.endswith("closed cleanly with 1 request(s) unread: sent again")


def test_a_request_on_a_connection_that_died_fails_and_is_not_sent_again() -> None:
    fed, sent, copies = closed_with_a_message_unread(clean=False)
    assert fed.alice.final_response(sent).status == 500
    assert copies == 0
