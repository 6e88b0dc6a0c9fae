"""Presence through the user agent against a real node: SUBSCRIBE, NOTIFYs as events,
PUBLISH with its entity tag, and unsubscribing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from intrafed.sip import Request
from intrafed.sip.pidf import PresenceState
from intrafed.ua import PresenceNotified, UserAgent
from tests.ua.nodes import ALICE_IP, BOB_IP, Trace, lab_node


def test_a_watcher_sees_published_states_and_ends_with_a_terminated_notify(
    tmp_path: Path,
) -> None:
    async def scenario() -> dict[str, object]:
        trace = Trace()
        async with (
            lab_node(tmp_path) as node,
            UserAgent(node.settings("alice", ALICE_IP), trace=trace) as alice,
            UserAgent(node.settings("bob", BOB_IP)) as bob,
        ):
            await alice.register()
            await bob.register()
            subscription = await bob.subscribe("alice@example.com")
            initial = await bob.next_event(PresenceNotified)
            busy = await alice.publish(PresenceState.BUSY, note="in a meeting")
            seen_busy = await bob.next_event(PresenceNotified)
            await alice.publish(PresenceState.AWAY)
            seen_away = await bob.next_event(PresenceNotified)
            refreshed = await subscription.refresh(600)
            seen_again = await bob.next_event(PresenceNotified)
            unsubscribed = await subscription.unsubscribe()
            final = await bob.next_event(PresenceNotified)
        publishes = [m for m in trace.sent if isinstance(m, Request) and m.method == "PUBLISH"]
        return {
            "initial": (initial.presentity, initial.state, initial.subscription_state),
            "busy": (busy.status, seen_busy.state, seen_busy.note),
            "away": (seen_away.state, seen_away.note),
            "refreshed": (refreshed.status, seen_again.state),
            "if-match": [p.headers.get("sip-if-match") for p in publishes],
            "etag": busy.response.headers.get("sip-etag"),
            "unsubscribed": unsubscribed.status,
            "final": (final.subscription_state.split(";")[0], subscription.state),
        }

    result = asyncio.run(asyncio.wait_for(scenario(), 60))
    # Registered and nothing published yet: Available (DESIGN §4).
    assert result["initial"] == (
        "alice@example.com",
        PresenceState.AVAILABLE,
        result["initial"][2],  # type: ignore[index]
    )
    assert str(result["initial"][2]).startswith("active")  # type: ignore[index]
    assert result["busy"] == (200, PresenceState.BUSY, "in a meeting")
    assert result["away"] == (PresenceState.AWAY, None)
    assert result["refreshed"] == (200, PresenceState.AWAY)
    # The second PUBLISH modifies the first one's publication (RFC 3903 §4.4).
    if_match = result["if-match"]
    assert isinstance(if_match, list)
    assert if_match[0] is None
    assert if_match[-1] == result["etag"]
    assert result["unsubscribed"] == 200
    assert result["final"] == ("terminated", "terminated")
