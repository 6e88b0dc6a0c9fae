"""The core's one deadline: nothing to do means no timer at all (no polling); hop probes,
presence and transactions share the same deadline."""

from __future__ import annotations

from bench.loopback import FakeClock, Network, Partition, imp_config, ocs_config
from intrafed.config import edits

LISTENERS = {"TCP": 5060, "MTLS": 5061, "TLS": 5063}


def test_an_idle_node_without_routes_arms_no_timer() -> None:
    config = edits.remove_route(imp_config(), "example.com", 1)
    imp = Partition(Network(FakeClock()), config, LISTENERS)
    imp.run_actions()
    assert imp.core.get_timer() is None


def test_the_next_hop_probe_is_the_deadline_of_an_idle_node_with_a_route() -> None:
    clock = FakeClock()
    network = Network(clock)
    imp = Partition(network, imp_config(), LISTENERS)
    Partition(network, ocs_config(), {"TCP": 5060, "MTLS": 5061, "TLS": 5062})
    imp.run_actions()
    start = clock.now
    assert imp.core.get_timer() == start  # the route's hop is watched from now
    imp.core.handle_timer(start)
    imp.run_actions()
    keepalive = imp.core.settings.probes.keepalive_interval
    assert imp.core.get_timer() == start + keepalive
    clock.now = start + keepalive
    imp.core.handle_timer(clock.now)
    assert imp.run_actions()  # the OPTIONS probe left
