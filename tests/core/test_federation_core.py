"""Both partitions' cores in one process with a fake clock and no sockets: the federation
scenarios of DESIGN §4 and §8, each in milliseconds of real time."""

from __future__ import annotations

from bench.loopback import (
    DOMAIN,
    IMP,
    MTLS,
    OCS,
    Client,
    Federation,
    advance,
    federation,
    imp_config,
    message,
    pump,
    registered,
)
from intrafed.config import edits
from intrafed.config.model import HostEntry, StaticRoute
from intrafed.sip import Request, Response
from intrafed.sip.headers import Headers
from intrafed.sip.pidf import PresenceState, build_pidf, parse_pidf

PIDF = ("Content-Type", "application/pidf+xml")


def last_presence(watcher: Client, of: str) -> PresenceState:
    notifies = [n for n in watcher.requests("NOTIFY") if n.body and of in str(n.from_addr.uri)]
    assert notifies, f"{watcher.aor} got no NOTIFY about {of}"
    return parse_pidf(notifies[-1].body).state


def subscribe(fed: Federation, watcher: Client, to: str) -> Response:
    request = watcher.new_request(
        "SUBSCRIBE",
        to,
        headers=(("Event", "presence"), ("Accept", "application/pidf+xml"), ("Expires", "600")),
    )
    return watcher.call(request, fed.ocs, fed.imp)


def publish(fed: Federation, user: Client, state: PresenceState) -> Response:
    request = user.new_request(
        "PUBLISH",
        user.aor,
        headers=(("Event", "presence"), ("Expires", "600"), PIDF),
        body=build_pidf(f"sip:{user.aor}", state),
    )
    return user.call(request, fed.ocs, fed.imp)


def test_presence_flows_both_ways_between_the_partitions() -> None:
    fed = registered()
    assert subscribe(fed, fed.alice, "bob@example.com").status // 100 == 2
    assert subscribe(fed, fed.bob, "alice@example.com").status // 100 == 2
    assert publish(fed, fed.bob, PresenceState.BUSY).status == 200
    assert publish(fed, fed.alice, PresenceState.AWAY).status == 200
    assert last_presence(fed.alice, "bob@example.com") is PresenceState.BUSY
    assert last_presence(fed.bob, "alice@example.com") is PresenceState.AWAY


def test_presence_expires_on_the_one_timer_without_polling() -> None:
    fed = registered()
    subscribe(fed, fed.alice, "bob@example.com")
    request = fed.bob.new_request(
        "PUBLISH",
        "bob@example.com",
        headers=(("Event", "presence"), ("Expires", "60"), PIDF),
        body=build_pidf("sip:bob@example.com", PresenceState.BUSY),
    )
    assert fed.bob.call(request, fed.ocs, fed.imp).status == 200
    assert last_presence(fed.alice, "bob@example.com") is PresenceState.BUSY
    advance(fed.ocs, fed.imp, fed.clock, 61)
    assert last_presence(fed.alice, "bob@example.com") is not PresenceState.BUSY


def test_a_pager_message_crosses_to_the_other_partition_and_back() -> None:
    fed = registered()
    assert fed.alice.call(message(fed.alice, "bob@example.com"), fed.ocs, fed.imp).status == 200
    assert fed.bob.call(message(fed.bob, "alice@example.com"), fed.ocs, fed.imp).status == 200
    assert [m.body for m in fed.bob.requests("MESSAGE")] == [b"hello"]
    assert [m.body for m in fed.alice.requests("MESSAGE")] == [b"hello"]


def test_a_session_im_follows_the_record_route_of_both_partitions() -> None:
    fed = registered()
    invite = fed.alice.new_request(
        "INVITE", "bob@example.com", headers=(("Content-Type", "application/sdp"),), body=b"v=0\r\n"
    )
    answer = fed.alice.call(invite, fed.ocs, fed.imp)
    assert answer.status == 200
    assert len(answer.record_routes) >= 2  # each partition stays on the path
    dialog = fed.alice.dialog(invite, answer)
    fed.alice.send(
        dialog.request("ACK", fed.alice.local.via("z9hG4bKack1"), cseq=answer.cseq.number)
    )
    pump(fed.ocs, fed.imp, fed.clock)
    assert len(fed.bob.requests("ACK")) == 1
    in_dialog = dialog.request(
        "MESSAGE",
        fed.alice.local.via("z9hG4bKim1"),
        (("Content-Type", "text/plain"),),
        b"in session",
    )
    assert fed.alice.call(in_dialog, fed.ocs, fed.imp).status == 200
    assert fed.bob.requests("MESSAGE")[-1].body == b"in session"
    bye = dialog.request("BYE", fed.alice.local.via("z9hG4bKbye1"))
    assert fed.alice.call(bye, fed.ocs, fed.imp).status == 200
    assert len(fed.bob.requests("BYE")) == 1


def test_a_user_on_neither_side_gets_404_without_a_loop() -> None:
    fed = registered()
    answer = fed.alice.call(message(fed.alice, "carol@example.com"), fed.ocs, fed.imp)
    assert answer.status == 404
    assert "came from the peer partition" in (answer.headers.get("warning") or "")
    # One trip to OCS, none back: no 482 and no second request anywhere.
    assert fed.bob.requests("MESSAGE") == []


def test_an_unreachable_route_fails_over_to_the_backup_route() -> None:
    dead = StaticRoute(DOMAIN, "TLS", MTLS, fqdn="ocs0.example.com", priority=1)
    config = imp_config()
    config = edits.remove_route(config, DOMAIN, 1)
    config = edits.add_route(config, dead)
    config = edits.add_route(config, StaticRoute(DOMAIN, "TLS", MTLS, fqdn=OCS[0], priority=2))
    config = edits.add_host(config, HostEntry("ocs0.example.com", "127.0.0.9"))
    fed = federation(imp=config)
    assert fed.alice.register(fed.ocs, fed.imp).status == 200
    assert fed.bob.register(fed.ocs, fed.imp).status == 200
    answer = fed.alice.call(message(fed.alice, "bob@example.com"), fed.ocs, fed.imp)
    assert answer.status == 200
    assert [m.body for m in fed.bob.requests("MESSAGE")] == [b"hello"]
    assert any("connection refused by 127.0.0.9" in line for line in fed.imp.log)


def test_a_peer_that_never_answers_times_out_with_timer_f_on_the_fake_clock() -> None:
    fed = registered()  # alice's connection is authenticated: no challenge now
    fed.network.silent.add(OCS[1])
    request = message(fed.alice, "bob@example.com")
    start = fed.clock.now
    fed.alice.send(request)
    advance(fed.ocs, fed.imp, fed.clock, 31)
    assert not [
        m for m in fed.alice.inbox if isinstance(m, Response) and m.call_id == request.call_id
    ]
    advance(fed.ocs, fed.imp, fed.clock, 9)
    final = fed.alice.final_response(request)
    assert final.status == 408
    assert "timer F" in (final.headers.get("warning") or "")
    assert fed.clock.now - start >= 32


def test_a_client_over_its_rate_gets_503_with_retry_after() -> None:
    config = edits.set_rate_limits(imp_config(), client_rate=1, client_burst=2)
    fed = federation(imp=config)
    statuses = []
    for _ in range(4):
        options = fed.alice.new_request("OPTIONS", "example.com")
        fed.alice.send(options)
        pump(fed.ocs, fed.imp, fed.clock)
        statuses.append(fed.alice.final_response(options))
    assert [r.status for r in statuses] == [200, 200, 503, 503]
    assert statuses[-1].headers.get("retry-after") is not None
    assert "rate limit of 127.0.0.20 exceeded" in (statuses[-1].headers.get("warning") or "")
    fed.clock.now += 5
    options = fed.alice.new_request("OPTIONS", "example.com")
    fed.alice.send(options)
    pump(fed.ocs, fed.imp, fed.clock)
    assert fed.alice.final_response(options).status == 200


def test_an_untrusted_mtls_peer_gets_403_and_one_log_line_naming_rule_source_and_user() -> None:
    fed = registered()
    rogue = Client(
        fed.network,
        "mallory@example.com",
        "127.0.0.66",
        fed.ocs,
        kind="MTLS",
        names=("rogue.example.net",),
    )
    answer = rogue.call(message(rogue, "bob@example.com"), fed.ocs, fed.imp)
    assert answer.status == 403
    rule = "MTLS peer 127.0.0.66 (rogue.example.net) matches no host authorization"
    assert rule in (answer.headers.get("warning") or "")
    assert fed.bob.requests("MESSAGE") == []
    [line] = [line for line in fed.ocs.log if line.startswith("403")]
    assert "127.0.0.66" in line
    assert "mallory@example.com" in line
    assert rule in line


def test_a_tls_alias_without_a_port_offers_the_tls_default_port_5061() -> None:
    fed = registered()
    peer = Client(fed.network, "alice@example.com", IMP[1], fed.ocs, kind="MTLS", names=(IMP[0],))
    options = peer.new_request("OPTIONS", "example.com")
    via = f"SIP/2.0/TLS {IMP[0]};branch=z9hG4bK-alias-1;alias"
    rest = [(n, v) for n, v in options.headers if n.lower() != "via"]
    peer.send(Request("OPTIONS", options.uri, Headers([("Via", via), *rest])))
    pump(fed.ocs, fed.imp, fed.clock)
    assert peer.final_response(options).status == 200
    assert ("TLS", IMP[1], 5061) in fed.ocs.aliases
    assert ("TLS", IMP[1], 5060) not in fed.ocs.aliases


def test_a_client_sending_as_a_foreign_user_gets_403_and_one_log_line() -> None:
    fed = registered()
    stranger = Client(fed.network, "eve@partner.example.net", "127.0.0.77", fed.imp)
    answer = stranger.call(message(stranger, "alice@example.com"), fed.ocs, fed.imp)
    assert answer.status == 403
    warning = answer.headers.get("warning") or ""
    [line] = [line for line in fed.imp.log if line.startswith("403")]
    assert "127.0.0.77" in line
    assert "eve@partner.example.net" in line
    assert warning.split('"')[1] in line


def test_a_node_late_on_its_reads_for_a_second_sheds_new_requests_with_503_then_serves_again() -> (
    None
):
    fed = registered()
    fed.network.read_delay[OCS[1]] = 0.08  # ocs1 handles every frame 80 ms after reading it
    statuses = []
    for _ in range(12):
        statuses.append(fed.bob.call(message(fed.bob, "alice@example.com"), fed.ocs, fed.imp))
        fed.clock.now += 0.2
    assert [s.status for s in statuses[:5]] == [200] * 5  # the first second: measured
    assert {s.status for s in statuses[6:]} == {503}
    refused = statuses[-1]
    assert refused.reason == "Overloaded"
    assert refused.headers.get("retry-after") == "5"
    assert "the request waited 80 ms to be handled (limit 50 ms)" in (
        refused.headers.get("warning") or ""
    )
    assert len([line for line in fed.ocs.log if line.startswith("overloaded:")]) == 1
    fed.network.read_delay.clear()
    fed.clock.now += 1.0
    assert fed.bob.call(message(fed.bob, "alice@example.com"), fed.ocs, fed.imp).status == 200


def test_a_subscription_taken_over_from_a_member_that_is_gone_gets_our_contact() -> None:
    router = federation().ocs.core.router
    ocs = router.listeners
    # The dead member's MTLS listener (TLS on the wire) -> ours; TCP -> ours, same user.
    assert router.contact_taken_over("sip:carol@fe1.example.com:5061;transport=tls") == ocs[
        "MTLS"
    ].contact("carol")
    assert router.contact_taken_over("sip:carol@10.0.0.9:5060;transport=tcp") == ocs["TCP"].contact(
        "carol"
    )


def test_a_node_late_on_its_reads_never_sheds_what_the_other_partition_admitted() -> None:
    """Regression: imp1 shed ocs1's relayed requests, so ocs1 paid a full relay for every
    503, its own capacity fell (484/s and 4,164 failures at 1,500/s offered, instead of
    1,324/s and none) and the next lower step failed too."""
    fed = registered()
    fed.network.read_delay[IMP[1]] = 0.08  # imp1 handles every frame 80 ms after reading it
    statuses = []
    for _ in range(12):
        statuses.append(fed.bob.call(message(fed.bob, "alice@example.com"), fed.ocs, fed.imp))
        fed.clock.now += 0.2
    assert {s.status for s in statuses} == {200}
