"""The presence agent (RFC 6665 / 3856 / 3903) with plain SUBSCRIBE and PUBLISH requests."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from intrafed.services.presence import (
    MAX_SUBSCRIBE_EXPIRES,
    MIN_SUBSCRIBE_EXPIRES,
    RESTORE_CSEQ_STEP,
    RETRY_INTERVAL,
    OutgoingNotify,
    PresenceAgent,
)
from intrafed.sip import Request, Response, parse_message
from intrafed.sip.pidf import PresenceState, build_pidf, parse_pidf
from intrafed.sip.transaction import NextHop, Target
from intrafed.sip.uri import parse_uri

NODE = "ocs1.example.com"
BOB = "bob@example.com"
ALICE = "alice@example.com"
LOCAL_CONTACT = "sip:ocs1.example.com:5061;transport=tls"
PEER_RECORD_ROUTE = "<sip:imp1.example.com:5061;transport=tls;lr>"
ALICE_CONTACT = "sip:alice@127.0.0.10:5070;transport=tcp"
PEER_HOP = NextHop("TLS", "imp1.example.com", 5061)
ALICE_HOP = NextHop("TCP", "127.0.0.10", 5070)
FLOW = 7
T0 = 1000.0


def subscribe(
    *,
    watcher: str = ALICE,
    presentity: str = BOB,
    call_id: str = "sub-1",
    from_tag: str = "w1",
    to_tag: str | None = None,
    cseq: int = 1,
    expires: str | None = "3600",
    event: str | None = "presence",
    record_route: str | None = PEER_RECORD_ROUTE,
    contact: str | None = f"<{ALICE_CONTACT}>",
    extra: str = "",
) -> Request:
    lines = [
        f"SUBSCRIBE sip:{presentity} SIP/2.0",
        f"Via: SIP/2.0/TLS imp1.example.com:5061;branch=z9hG4bK-{call_id}-{cseq}",
        "Max-Forwards: 69",
        f"From: <sip:{watcher}>;tag={from_tag}",
        f"To: <sip:{presentity}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
    ]
    if record_route is not None:
        lines.append(f"Record-Route: {record_route}")
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    text = "\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
    message = parse_message(text.encode(), stream=True)
    assert isinstance(message, Request)
    return message


def publish(
    body: bytes = b"",
    *,
    aor: str = BOB,
    cseq: int = 1,
    if_match: str | None = None,
    expires: str | None = "3600",
    event: str = "presence",
    content_type: str = "application/pidf+xml",
) -> Request:
    lines = [
        f"PUBLISH sip:{aor} SIP/2.0",
        f"Via: SIP/2.0/TCP 127.0.0.20:5070;branch=z9hG4bK-pub-{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:{aor}>;tag=p1",
        f"To: <sip:{aor}>",
        "Call-ID: pub-1",
        f"CSeq: {cseq} PUBLISH",
        f"Event: {event}",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if if_match is not None:
        lines.append(f"SIP-If-Match: {if_match}")
    if body:
        lines.append(f"Content-Type: {content_type}")
    text = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
    message = parse_message(text.encode() + body, stream=True)
    assert isinstance(message, Request)
    return message


def pidf(state: PresenceState, note: str | None = None) -> bytes:
    return build_pidf(f"sip:{BOB}", state, note)


def agent(blocked: frozenset[tuple[str, str]] = frozenset()) -> PresenceAgent:
    branches = itertools.count(1)

    def via_for(target: Target) -> str:
        transport = target.transport if isinstance(target, NextHop) else "TLS"
        return f"SIP/2.0/{transport} {NODE}:5061;branch=z9hG4bK-n{next(branches)}"

    return PresenceAgent(
        NODE,
        is_homed=lambda aor: aor in (BOB, "carol@example.com"),
        is_blocked=lambda presentity, watcher: (presentity, watcher) in blocked,
        via_for=via_for,
    )


def subscribed(service: PresenceAgent, **kwargs: Any) -> tuple[Response, OutgoingNotify]:
    response, notifies = service.subscribe(subscribe(**kwargs), FLOW, LOCAL_CONTACT, T0)
    assert response.status == 200, response.headers.get("warning")
    [notify] = notifies
    return response, notify


def shown(notify: OutgoingNotify) -> PresenceState:
    return parse_pidf(notify.request.body).state


def refusal(response: Response, status: int) -> str:
    assert response.status == status
    warning = response.headers.get("warning")
    assert warning is not None
    assert warning.startswith(f"399 {NODE} ")
    return warning


def test_the_initial_notify_is_an_in_dialog_request_with_the_current_state() -> None:
    service = agent()
    response, notify = subscribed(service)
    our_tag = response.to_addr.tag
    assert our_tag
    assert response.headers.get("contact") == f"<{LOCAL_CONTACT}>"
    assert response.headers.get("expires") == "3600"
    request = notify.request
    assert request.method == "NOTIFY"
    assert str(request.uri) == ALICE_CONTACT
    assert request.headers.get_all("route") == [PEER_RECORD_ROUTE]
    assert request.headers.get("from") == f"<sip:{BOB}>;tag={our_tag}"
    assert request.headers.get("to") == f"<sip:{ALICE}>;tag=w1"
    assert request.call_id == "sub-1"
    assert str(request.cseq) == "1 NOTIFY"
    assert request.max_forwards == 70
    assert request.headers.get("contact") == f"<{LOCAL_CONTACT}>"
    assert request.headers.get("event") == "presence"
    assert request.headers.get("subscription-state") == "active;expires=3600"
    assert request.headers.get("content-type") == "application/pidf+xml"
    assert parse_pidf(request.body).entity == f"sip:{BOB}"
    assert shown(notify) is PresenceState.OFFLINE
    assert (notify.route_hop, notify.flow, notify.contact_hop) == (PEER_HOP, FLOW, ALICE_HOP)
    assert notify.target == PEER_HOP
    assert request.top_via.transport == "TLS"
    assert request.top_via.branch == "z9hG4bK-n1"
    assert service.owns_dialog(subscribe(to_tag=our_tag, cseq=2))


def test_the_200_to_subscribe_carries_the_record_route_of_the_request() -> None:
    two = f"{PEER_RECORD_ROUTE}, <sip:127.0.0.2;lr>"
    response, _notify = subscribed(agent(), record_route=two)
    assert response.headers.get_all("record-route") == [two]
    assert [str(route) for route in response.record_routes] == [
        PEER_RECORD_ROUTE,
        "<sip:127.0.0.2;lr>",
    ]


def test_without_a_route_set_the_notify_goes_over_the_subscribe_flow() -> None:
    _, notify = subscribed(agent(), record_route=None, event="presence;id=7")
    assert notify.request.headers.get_all("route") == []
    assert notify.route_hop is None
    assert notify.target == FLOW
    assert notify.request.headers.get("event") == "presence;id=7"


def test_a_strict_router_in_the_route_set_gets_the_request_uri() -> None:
    _, notify = subscribed(agent(), record_route="<sip:imp1.example.com:5061;transport=tls>")
    assert str(notify.request.uri) == "sip:imp1.example.com:5061;transport=tls"
    assert notify.request.headers.get_all("route") == [f"<{ALICE_CONTACT}>"]


@pytest.mark.parametrize(
    ("expires", "granted"),
    [(None, "3600"), ("7200", str(MAX_SUBSCRIBE_EXPIRES)), (str(MIN_SUBSCRIBE_EXPIRES), "60")],
)
def test_expires_defaults_and_is_capped(expires: str | None, granted: str) -> None:
    response, notify = subscribed(agent(), expires=expires)
    assert response.headers.get("expires") == granted
    assert notify.request.headers.get("subscription-state") == f"active;expires={granted}"


def test_too_brief_an_interval_gets_423_with_min_expires() -> None:
    response, notifies = agent().subscribe(subscribe(expires="30"), FLOW, LOCAL_CONTACT, T0)
    assert "minimum of 60" in refusal(response, 423)
    assert response.reason == "Interval Too Brief"
    assert response.headers.get("min-expires") == "60"
    assert notifies == []


def test_a_refresh_extends_and_notifies_and_an_old_cseq_is_refused() -> None:
    service = agent()
    response, _ = subscribed(service)
    tag = response.to_addr.tag
    refreshed, [notify] = service.subscribe(
        subscribe(to_tag=tag, cseq=2, expires="600"), FLOW + 1, LOCAL_CONTACT, T0 + 100
    )
    assert refreshed.status == 200
    assert refreshed.to_addr.tag == tag
    assert str(notify.request.cseq) == "2 NOTIFY"
    assert notify.request.headers.get("subscription-state") == "active;expires=600"
    assert notify.flow == FLOW + 1
    assert service.next_deadline() == T0 + 700
    stale, notifies = service.subscribe(subscribe(to_tag=tag, cseq=2), FLOW, LOCAL_CONTACT, T0)
    assert "CSeq not higher" in refusal(stale, 500)
    assert notifies == []


def test_unsubscribe_sends_a_final_notify_and_forgets_the_dialog() -> None:
    service = agent()
    response, _ = subscribed(service)
    tag = response.to_addr.tag
    service.take_store_changes()
    ended, [notify] = service.subscribe(
        subscribe(to_tag=tag, cseq=2, expires="0"), FLOW, LOCAL_CONTACT, T0 + 5
    )
    assert ended.status == 200
    assert ended.headers.get("expires") == "0"
    assert notify.request.headers.get("subscription-state") == "terminated;reason=timeout"
    assert not service.owns_dialog(subscribe(to_tag=tag, cseq=3))
    assert service.take_store_changes().deleted_subscriptions == (notify.subscription,)
    again, _ = service.subscribe(subscribe(to_tag=tag, cseq=3), FLOW, LOCAL_CONTACT, T0 + 6)
    assert "no such subscription" in refusal(again, 481)


def test_a_moved_presentity_ends_its_subscriptions_with_reason_deactivated() -> None:
    service = agent()
    response, _ = subscribed(service)
    subscribed(service, watcher="carol@example.com", call_id="sub-2", from_tag="w2")
    published, _ = service.publish(publish(pidf(PresenceState.BUSY)), T0)
    service.take_store_changes()
    notifies = service.deactivate(BOB, T0 + 5)
    assert [n.request.headers.get("subscription-state") for n in notifies] == [
        "terminated;reason=deactivated"
    ] * 2
    assert not service.owns_dialog(subscribe(to_tag=response.to_addr.tag, cseq=2))
    stored = service.take_store_changes()
    assert sorted(stored.deleted_subscriptions) == sorted(n.subscription for n in notifies)
    assert stored.deleted_publications == (published.headers.get("sip-etag"),)
    assert service.subscription_rows() == []
    assert service.deactivate(BOB, T0 + 6) == []


def test_an_unknown_dialog_gets_481() -> None:
    response, notifies = agent().subscribe(subscribe(to_tag="nope"), FLOW, LOCAL_CONTACT, T0)
    refusal(response, 481)
    assert notifies == []


def test_a_fetch_gets_one_terminated_notify_and_no_subscription() -> None:
    service = agent()
    response, [notify] = service.subscribe(subscribe(expires="0"), FLOW, LOCAL_CONTACT, T0)
    assert response.status == 200
    assert notify.request.headers.get("subscription-state") == "terminated;reason=timeout"
    assert service.next_deadline() is None
    assert service.take_store_changes().saved_subscriptions == ()


@pytest.mark.parametrize("event", ["dialog", None])
def test_other_event_packages_get_489_with_allow_events(event: str | None) -> None:
    response, _ = agent().subscribe(subscribe(event=event), FLOW, LOCAL_CONTACT, T0)
    assert "only presence" in refusal(response, 489)
    assert response.headers.get("allow-events") == "presence"


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("Accept: application/sdp\r\n", 406),
        ("Accept: text/plain, application/pidf+xml;q=0.5\r\n", 200),
        ("Accept: */*\r\n", 200),
        ("", 200),
    ],
)
def test_accept_must_allow_pidf(accept: str, status: int) -> None:
    response, _ = agent().subscribe(subscribe(extra=accept), FLOW, LOCAL_CONTACT, T0)
    assert response.status == status
    if status == 406:
        refusal(response, 406)
        assert response.headers.get("accept") == "application/pidf+xml"


def test_unknown_presentities_and_foreign_watchers_are_refused() -> None:
    service = agent()
    response, _ = service.subscribe(subscribe(presentity="zed@example.com"), 1, LOCAL_CONTACT, T0)
    assert "zed@example.com is not a user of this node" in refusal(response, 404)
    response, _ = service.subscribe(subscribe(watcher="eve@other.org"), 1, LOCAL_CONTACT, T0)
    assert "watchers from other domains" in refusal(response, 403)
    response, _ = service.subscribe(subscribe(contact=None), 1, LOCAL_CONTACT, T0)
    assert "must have a Contact" in refusal(response, 400)


def test_a_blocked_watcher_is_accepted_but_always_sees_offline() -> None:
    service = agent(blocked=frozenset({(BOB, "mallory@example.com")}))
    service.registration_changed(BOB, True, T0)
    _, blocked = subscribed(service, watcher="mallory@example.com", call_id="m")
    _, friend = subscribed(service, call_id="a")
    assert shown(blocked) is PresenceState.OFFLINE
    assert shown(friend) is PresenceState.AVAILABLE
    _, notifies = service.publish(publish(pidf(PresenceState.BUSY, "call me")), T0 + 1)
    assert [n.request.call_id for n in notifies] == ["a"]
    assert parse_pidf(notifies[0].request.body).note == "call me"


def test_publish_lifecycle_with_entity_tags() -> None:
    service = agent()
    subscribed(service)
    response, [notify] = service.publish(publish(pidf(PresenceState.BUSY)), T0)
    assert response.status == 200
    assert response.headers.get("expires") == "3600"
    first = response.headers.get("sip-etag")
    assert first
    assert shown(notify) is PresenceState.BUSY
    assert service.state_of(BOB, T0) is PresenceState.BUSY

    refreshed, notifies = service.publish(publish(cseq=2, if_match=first, expires="600"), T0 + 1)
    second = refreshed.headers.get("sip-etag")
    assert refreshed.status == 200
    assert second not in (None, first)
    assert refreshed.headers.get("expires") == "600"
    assert notifies == []

    stale, _ = service.publish(publish(cseq=3, if_match=first), T0 + 2)
    assert stale.reason == "Conditional Request Failed"
    assert "matches no publication" in refusal(stale, 412)

    modified, [notify] = service.publish(
        publish(pidf(PresenceState.BE_RIGHT_BACK), cseq=4, if_match=second), T0 + 3
    )
    third = modified.headers.get("sip-etag")
    assert third not in (None, first, second)
    assert shown(notify) is PresenceState.BE_RIGHT_BACK

    removed, [notify] = service.publish(publish(cseq=5, if_match=third, expires="0"), T0 + 4)
    assert removed.status == 200
    assert removed.headers.get("expires") == "0"
    assert removed.headers.get("sip-etag") is None
    assert shown(notify) is PresenceState.OFFLINE
    changes = service.take_store_changes()
    assert changes.saved_publications == ()
    assert set(changes.deleted_publications) == {first, second, third}


def test_bad_publishes_are_refused_with_the_reason() -> None:
    service = agent()
    response, _ = service.publish(publish(b"<presence"), T0)
    assert "not well-formed XML" in refusal(response, 400)
    assert response.reason.startswith("PIDF body is not well-formed XML")
    response, _ = service.publish(publish(pidf(PresenceState.AWAY), event="dialog"), T0)
    refusal(response, 489)
    assert response.headers.get("allow-events") == "presence"
    response, _ = service.publish(publish(), T0)
    assert "needs a body" in refusal(response, 400)
    response, _ = service.publish(publish(b"hi", content_type="text/plain"), T0)
    refusal(response, 415)
    response, _ = service.publish(publish(pidf(PresenceState.AWAY), expires="10"), T0)
    refusal(response, 423)


def test_presence_follows_registration_while_nothing_is_published() -> None:
    service = agent()
    subscribed(service)
    [notify] = service.registration_changed(BOB, True, T0)
    assert shown(notify) is PresenceState.AVAILABLE
    assert service.registration_changed(BOB, True, T0 + 1) == []
    response, [notify] = service.publish(publish(pidf(PresenceState.DO_NOT_DISTURB)), T0 + 2)
    assert shown(notify) is PresenceState.DO_NOT_DISTURB
    assert service.registration_changed(BOB, False, T0 + 3) == []
    assert service.state_of(BOB, T0 + 3) is PresenceState.DO_NOT_DISTURB
    etag = response.headers.get("sip-etag")
    _, [notify] = service.publish(publish(cseq=2, if_match=etag, expires="0"), T0 + 4)
    assert shown(notify) is PresenceState.OFFLINE


def test_expiry_ends_subscriptions_with_a_reason_and_drops_publications() -> None:
    service = agent()
    subscribed(service, expires="600")
    service.publish(publish(pidf(PresenceState.AWAY), expires="300"), T0)
    assert service.next_deadline() == T0 + 300
    [notify] = service.expire(T0 + 300)
    assert shown(notify) is PresenceState.OFFLINE
    assert service.next_deadline() == T0 + 600
    assert service.expire(T0 + 599) == []
    [final] = service.expire(T0 + 600)
    assert final.request.headers.get("subscription-state") == "terminated;reason=timeout"
    assert service.next_deadline() is None


def test_a_notify_that_times_out_is_retried_until_it_gets_through() -> None:
    service = agent()
    _, notify = subscribed(service)
    assert service.notify_outcome(notify.subscription, 408, T0 + 32) == []
    assert service.next_deadline() == T0 + 32 + RETRY_INTERVAL
    # A change while the watcher is unreachable waits for the retry.
    assert service.registration_changed(BOB, True, T0 + 33) == []
    [retry] = service.expire(T0 + 32 + RETRY_INTERVAL)
    assert str(retry.request.cseq) == "2 NOTIFY"
    assert retry.request.top_via.branch != notify.request.top_via.branch
    assert shown(retry) is PresenceState.AVAILABLE
    service.notify_outcome(retry.subscription, 503, T0 + 50)
    [again] = service.expire(T0 + 60)
    service.notify_outcome(again.subscription, 200, T0 + 61)
    assert service.next_deadline() == T0 + 3600


def test_a_notify_answered_481_ends_the_subscription() -> None:
    service = agent()
    response, notify = subscribed(service)
    service.notify_outcome(notify.subscription, 481, T0 + 1)
    assert not service.owns_dialog(subscribe(to_tag=response.to_addr.tag, cseq=2))
    assert service.registration_changed(BOB, True, T0 + 2) == []
    assert service.next_deadline() is None
    assert service.notify_outcome(notify.subscription, 200, T0 + 3) == []


def test_after_a_restore_every_subscription_is_notified_with_a_higher_cseq() -> None:
    service = agent()
    response, notify = subscribed(service)
    service.publish(publish(pidf(PresenceState.AWAY, "lunch")), T0)
    changes = service.take_store_changes()
    [row] = changes.saved_subscriptions
    assert row.id == notify.subscription
    assert row.route_set == PEER_RECORD_ROUTE

    restarted = agent()
    restarted.restore(changes.saved_subscriptions, changes.saved_publications)
    assert restarted.owns_dialog(subscribe(to_tag=response.to_addr.tag, cseq=2))
    [renotify] = restarted.renotify_all(T0 + 60)
    assert renotify.request.cseq.number > RESTORE_CSEQ_STEP
    assert renotify.flow is None
    assert renotify.target == PEER_HOP
    assert renotify.request.headers.get("subscription-state") == "active;expires=3540"
    assert parse_pidf(renotify.request.body).note == "lunch"
    assert restarted.next_deadline() == T0 + 3600


def test_renotify_all_tells_every_watcher_including_those_told_since_the_restore() -> None:
    service = agent()
    subscribed(service, call_id="a")
    subscribed(service, presentity="carol@example.com", call_id="c")
    changes = service.take_store_changes()
    restarted = agent()
    restarted.restore(changes.saved_subscriptions, changes.saved_publications)
    restarted.registration_changed(BOB, True, T0 + 60)
    notifies = restarted.renotify_all(T0 + 60)
    assert {n.request.call_id: shown(n) for n in notifies} == {
        "a": PresenceState.AVAILABLE,
        "c": PresenceState.OFFLINE,
    }


def test_a_thousand_watchers_get_one_notify_each_with_one_shared_body() -> None:
    service = agent()
    for n in range(1000):
        subscribed(service, watcher=f"w{n}@example.com", call_id=f"sub-{n}", from_tag=f"t{n}")
    _, notifies = service.publish(publish(pidf(PresenceState.BUSY)), T0 + 1)
    assert len(notifies) == 1000
    assert len({n.subscription for n in notifies}) == 1000
    assert len({id(n.request.body) for n in notifies}) == 1
    assert shown(notifies[0]) is PresenceState.BUSY


def test_block_list_changes_reach_only_the_watcher_concerned() -> None:
    blocked: set[tuple[str, str]] = set()
    service = PresenceAgent(
        NODE,
        is_homed=lambda aor: aor == BOB,
        is_blocked=lambda presentity, watcher: (presentity, watcher) in blocked,
        via_for=lambda target: "SIP/2.0/TLS ocs1.example.com:5061;branch=z9hG4bK-x",
    )
    service.registration_changed(BOB, True, T0)
    subscribed(service, call_id="a")
    subscribed(service, watcher="carol@example.com", call_id="c")
    blocked.add((BOB, ALICE))
    [notify] = service.block_list_changed(BOB, T0 + 1)
    assert notify.request.call_id == "a"
    assert shown(notify) is PresenceState.OFFLINE


def test_contact_uri_is_the_request_uri_even_with_parameters() -> None:
    contact = "sip:alice@[::1]:5070;transport=tcp;ob"
    _, notify = subscribed(agent(), contact=f"<{contact}>;+sip.instance=x")
    assert notify.request.uri == parse_uri(contact)


def test_the_newest_publication_wins_and_the_other_shows_when_it_ends() -> None:
    service = agent()
    service.publish(publish(pidf(PresenceState.BUSY), cseq=1, expires="600"), T0)
    response, _ = service.publish(publish(pidf(PresenceState.AWAY), cseq=2), T0)
    assert service.state_of(BOB, T0) is PresenceState.AWAY
    etag = response.headers.get("sip-etag")
    service.publish(publish(cseq=3, if_match=etag, expires="0"), T0 + 1)
    assert service.state_of(BOB, T0 + 1) is PresenceState.BUSY
    assert service.state_of(BOB, T0 + 600) is PresenceState.OFFLINE


def test_rollback_of_a_publish_the_store_refused_leaves_state_and_watchers_as_before() -> None:
    service = agent()
    subscribed(service)
    response, _ = service.publish(publish(pidf(PresenceState.BUSY)), T0)
    busy = response.headers.get("sip-etag")
    service.take_store_changes()

    service.checkpoint()
    modified, [notify] = service.publish(
        publish(pidf(PresenceState.AWAY), cseq=2, if_match=busy), T0 + 1
    )
    assert shown(notify) is PresenceState.AWAY
    service.take_store_changes()
    service.rollback()

    assert service.state_of(BOB, T0 + 1) is PresenceState.BUSY
    # The watcher was never told Away: publishing Away again notifies it; the old entity
    # tag still names the publication.
    refreshed, notifies = service.publish(publish(cseq=3, if_match=busy), T0 + 2)
    assert (refreshed.status, notifies) == (200, [])
    again, [notify] = service.publish(
        publish(pidf(PresenceState.AWAY), cseq=4, if_match=refreshed.headers.get("sip-etag")),
        T0 + 3,
    )
    assert again.status == 200
    assert shown(notify) is PresenceState.AWAY
    assert modified.headers.get("sip-etag") not in service.take_store_changes().deleted_publications


def test_rollback_of_a_subscribe_the_store_refused_forgets_or_keeps_the_subscription() -> None:
    service = agent()
    service.checkpoint()
    response, _ = subscribed(service)
    service.take_store_changes()
    service.rollback()
    # The new subscription never was: its dialog is unknown and nobody is notified.
    assert not service.owns_dialog(subscribe(to_tag=response.to_addr.tag, cseq=2))
    published, notifies = service.publish(publish(pidf(PresenceState.BUSY)), T0)
    assert notifies == []

    response, first = subscribed(service, call_id="sub-2")
    service.take_store_changes()
    service.checkpoint()
    unsubscribe = subscribe(call_id="sub-2", to_tag=response.to_addr.tag, cseq=2, expires="0")
    _, [final] = service.subscribe(unsubscribe, FLOW, LOCAL_CONTACT, T0 + 1)
    assert final.request.headers.get("subscription-state") == "terminated;reason=timeout"
    service.take_store_changes()
    service.rollback()
    # The subscription goes on, its NOTIFYs numbered after the last one really sent.
    assert service.owns_dialog(unsubscribe)
    _, [notify] = service.publish(
        publish(pidf(PresenceState.AWAY), cseq=2, if_match=published.headers.get("sip-etag")),
        T0 + 2,
    )
    assert notify.request.cseq.number == first.request.cseq.number + 1
    assert service.take_store_changes().deleted_subscriptions == ()


def test_changes_the_store_refused_are_taken_again_unless_changed_since() -> None:
    service = agent()
    response, _ = subscribed(service)
    service.publish(publish(pidf(PresenceState.BUSY)), T0)
    refused = service.take_store_changes()
    assert len(refused.saved_subscriptions) == len(refused.saved_publications) == 1
    unsubscribe = subscribe(to_tag=response.to_addr.tag, cseq=2, expires="0")
    service.subscribe(unsubscribe, FLOW, LOCAL_CONTACT, T0 + 1)
    service.requeue_store_changes(refused)
    again = service.take_store_changes()
    assert again.saved_subscriptions == ()
    assert again.deleted_subscriptions == (refused.saved_subscriptions[0].id,)
    assert again.saved_publications == refused.saved_publications
