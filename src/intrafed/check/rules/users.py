"""Rules of the last steps: users on both sides, the routing mode's directory, and
settings waiting for a restart."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding
from intrafed.check.rules.catalogue import rule
from intrafed.config.model import Role, RoutingMode


def check_users(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    yield from _blocked_nowhere(node, others)
    if config.role is Role.IMP:
        yield from _directory(node, others)
        return
    for peer in others:
        theirs = {user.aor for user in peer.config.users}
        for user in config.users:
            if user.aor not in theirs:
                continue
            if user.enabled:
                # OCS keeps it as its own: the IM and Presence copy is the one nobody reaches.
                stray, keeper = peer, node
                state = (
                    f"enabled on {node.name}, which keeps it as its own, so {peer.name} "
                    "delivers to a copy nobody registers (480) and refuses its requests from "
                    f"{node.name} as its own user's (403)"
                )
            else:
                stray, keeper = node, peer
                state = (
                    f"disabled but not deleted on {node.name}, which still treats it as its "
                    f"own, so messages never reach {peer.name} (Disable before Delete)"
                )
            yield rule("user.both-sides").finding(
                stray.name,
                f"{user.aor} is provisioned on {node.name} and on {peer.name}: {state} (if it "
                f"belongs on {stray.name}: intrafed config user remove {user.aor} "
                f"{keeper.home_arg})",
                f"intrafed config user remove {user.aor} {stray.home_arg}",
            )


def _blocked_nowhere(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """Watchers of our domains that block lists name but no side provisions: a move that
    stopped half-way (deleted on the old side, never added on the new one)."""
    if not others:
        return
    config = node.config
    served = set(config.domains)
    known = {user.aor for side in (node, *others) for user in side.config.users}
    owners: dict[str, list[str]] = {}
    for user in config.users:
        for watcher in user.blocked:
            if watcher not in known and watcher.rpartition("@")[2] in served:
                owners.setdefault(watcher, []).append(user.aor)
    sides = ", ".join(side.name for side in (node, *others))
    for watcher, blocking in owners.items():
        unblock = " && ".join(
            f"intrafed config user unblock {owner} {watcher} {node.home_arg}" for owner in blocking
        )
        yield rule("user.neither-side").finding(
            node.name,
            f"{watcher} is provisioned on none of {sides}, yet the block list of "
            f"{', '.join(blocking)} names it: if it is a user moved half-way, it has no "
            f"home and every request for it gets 404 (if it left for good: {unblock})",
            "intrafed config user import USERS.csv --home <its new home> (its line of an "
            "earlier intrafed config user export --csv)",
        )


def _directory(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """Advanced routing mode forwards only the directory's users: it must hold exactly the
    users of the OCS side (when that side is given)."""
    config = node.config
    if config.routing_mode is not RoutingMode.ADVANCED:
        return
    source = next((f"--from-home {o.home}" for o in others if o.home is not None), None)
    refill = f"intrafed config directory import {source or 'FILE'} {node.home_arg}"
    if not config.peer_directory:
        yield rule("routing.advanced").finding(
            node.name,
            "advanced routing mode forwards only users listed in a directory of the OCS "
            "side's users, and the directory is empty: every OCS user gets 404 (or go back "
            f"to basic: intrafed config routing-mode basic {node.home_arg})",
            refill,
        )
        return
    if not others:
        return
    theirs = {user.aor for other in others for user in other.config.users}
    listed = set(config.peer_directory)
    sides = ", ".join(other.name for other in others)
    unknown = sorted(listed - theirs)
    if unknown:
        yield rule("routing.directory-stale").finding(
            node.name,
            f"the directory lists {', '.join(unknown)}, not provisioned on {sides}: requests "
            "for them cross to the OCS side and come back 404 (or refill it: "
            f"{refill})",
            " && ".join(
                f"intrafed config directory remove {aor} {node.home_arg}" for aor in unknown
            ),
        )
    missing = sorted(theirs - listed)
    if missing:
        yield rule("routing.directory-missing").finding(
            node.name,
            f"the directory misses {', '.join(missing)} of {sides}: requests for them get 404 "
            f"here instead of reaching the OCS side (or refill it: {refill})",
            f"intrafed config directory add {' '.join(missing)} {node.home_arg}",
        )


def check_restart(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """A running node runs its running configuration, not the staged one checked here (a
    node that is stopped starts with the staged one)."""
    if node.pending and node.running:
        yield rule("restart.pending").finding(
            node.name,
            f"the running node does not run what was checked; pending: {'; '.join(node.pending)}",
            f"intrafed service {node.apply_command or 'restart'} {node.home_arg}",
        )
