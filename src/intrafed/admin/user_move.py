"""Moving users from one partition to the other, store by store: the plan (each user on
exactly one side), and its edits in the seed's order (provision on the new side with the
HA1s, then disable and delete on the old side), undone as a whole when a step fails.

The users keep their block lists; the IM and Presence side's directory of OCS users (its
advanced routing mode) follows them. The running nodes are the caller's to reload.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from intrafed.config.model import ConfigError, NodeConfig, Role, RoutingMode, User
from intrafed.config.values import check_aor
from intrafed.store import StagedEdit, StateChanges, Store
from intrafed.store.base import Kind


class StagedConfiguration(Protocol):
    """What a move edits on each side: a node's store, an exported configuration file, or
    a pool's database."""

    def load(self, kind: Kind = "staged") -> NodeConfig:
        """The staged configuration."""
        ...

    def stage(self, edit: StagedEdit) -> NodeConfig:
        """Apply ``edit`` to the staged configuration atomically."""
        ...

    def replace_staged(self, config: NodeConfig) -> None:
        """Make ``config`` the staged configuration."""
        ...


@dataclass(frozen=True, slots=True)
class MovePlan:
    """Which users move, as the old side has them, and the two sides' staged
    configurations the plan was made from."""

    users: tuple[User, ...]
    source: NodeConfig
    target: NodeConfig

    @property
    def aors(self) -> tuple[str, ...]:
        """The addresses moved."""
        return tuple(user.aor for user in self.users)

    def steps(self) -> list[str]:
        """What the move does to the stores, in order, one line each."""
        old, new = self.source.identity.fqdn, self.target.identity.fqdn
        steps = []
        for user in self.users:
            credentials = "+".join(
                name
                for name, value in (("MD5", user.ha1_md5), ("SHA-256", user.ha1_sha256))
                if value
            )
            blocked = f", blocking {len(user.blocked)} watcher(s)" if user.blocked else ""
            steps.append(
                f"{new}: add {user.aor} ({'enabled' if user.enabled else 'disabled'}, "
                f"HA1 {credentials}{blocked})"
            )
        names = ", ".join(self.aors)
        steps.append(f"{old}: disable {names}")
        steps.append(f"{old}: delete {names}")
        for side, change in (
            (self.target, _directory_change(self.target, self.aors, listed=False)),
            (self.source, _directory_change(self.source, self.aors, listed=True)),
        ):
            if change:
                steps.append(f"{side.identity.fqdn}: directory {change}")
        return steps


def _directory_change(config: NodeConfig, aors: Sequence[str], *, listed: bool) -> str | None:
    """What the IM&P directory of OCS users needs: the moved users listed (they now live
    on the OCS side) or not; None when ``config`` keeps no directory."""
    if config.role is not Role.IMP or not _keeps_directory(config):
        return None
    present = set(config.peer_directory)
    if listed:
        added = [aor for aor in aors if aor not in present]
        return f"add {', '.join(added)}" if added else None
    removed = [aor for aor in aors if aor in present]
    return f"remove {', '.join(removed)}" if removed else None


def _keeps_directory(config: NodeConfig) -> bool:
    return config.routing_mode is RoutingMode.ADVANCED or bool(config.peer_directory)


def plan_move(aors: Sequence[str], source: NodeConfig, target: NodeConfig) -> MovePlan:
    """The move of ``aors`` from ``source`` to ``target``; ``ConfigError`` naming every
    user that is not on exactly the old side (or whose domain the new side does not
    serve)."""
    if source.identity == target.identity:
        raise ConfigError("--to", "is the same node as --from", "give the other side's home")
    if not aors:
        raise ConfigError("USER@DOMAIN", "no user given", "name users, or give --csv FILE")
    theirs = {user.aor: user for user in source.users}
    ours = {user.aor for user in target.users}
    served = set(target.domains)
    users: list[User] = []
    problems: list[str] = []
    seen: set[str] = set()
    old, new = source.identity.fqdn, target.identity.fqdn
    for given in aors:
        try:
            aor = check_aor("USER@DOMAIN", given)
        except ConfigError as exc:
            problems.append(exc.message)
            continue
        if aor in seen:
            continue
        seen.add(aor)
        user = theirs.get(aor)
        if user is None and aor in ours:
            problems.append(f"{aor} is already on {new}")
        elif user is None:
            problems.append(f"{aor} is not a user of {old}")
        elif aor in ours:
            problems.append(f"{aor} is on both {old} and {new} (see intrafed check)")
        elif user.domain not in served:
            problems.append(f"{new} does not serve {user.domain}")
        else:
            users.append(user)
    if problems:
        raise ConfigError("user move", "; ".join(problems), "nothing was moved; fix the list")
    return MovePlan(tuple(users), source, target)


def moved_in(config: NodeConfig, plan: MovePlan) -> NodeConfig:
    """``config`` (the new side) with the users added as the old side had them."""
    present = {user.aor for user in config.users}
    clash = [aor for aor in plan.aors if aor in present]
    if clash:
        raise ConfigError("user move", f"{clash[0]} is already on the new side", "see check")
    directory = config.peer_directory
    if _directory_change(config, plan.aors, listed=False):
        directory = tuple(aor for aor in directory if aor not in plan.aors)
    return dataclasses.replace(
        config, users=(*config.users, *plan.users), peer_directory=directory
    ).validate()


def disabled_out(config: NodeConfig, plan: MovePlan) -> NodeConfig:
    """``config`` (the old side) with the users disabled: the seed's first step."""
    moving = set(plan.aors)
    users = tuple(
        dataclasses.replace(user, enabled=False) if user.aor in moving else user
        for user in config.users
    )
    return dataclasses.replace(config, users=users).validate()


def deleted_out(config: NodeConfig, plan: MovePlan) -> NodeConfig:
    """``config`` (the old side) without the users, its directory listing them when it
    keeps one (they are the OCS side's users now)."""
    moving = set(plan.aors)
    directory = config.peer_directory
    if _directory_change(config, plan.aors, listed=True):
        directory = (*directory, *(aor for aor in plan.aors if aor not in directory))
    users = tuple(user for user in config.users if user.aor not in moving)
    return dataclasses.replace(config, users=users, peer_directory=directory).validate()


def apply_move(source: StagedConfiguration, target: StagedConfiguration, plan: MovePlan) -> None:
    """Stage the move: the users provisioned on ``target``, then disabled and deleted on
    ``source``, each a transaction of its store. When a step fails, both stores are put
    back as they were and the error raised."""
    target_before = target.load("staged")
    source_before = source.load("staged")
    target.stage(lambda config: moved_in(config, plan))
    disabled = False
    try:
        source.stage(lambda config: disabled_out(config, plan))
        disabled = True
        source.stage(lambda config: deleted_out(config, plan))
    except ConfigError:
        target.replace_staged(target_before)
        if disabled:
            source.replace_staged(source_before)
        raise


def forget_state(store: Store, aors: Sequence[str], now: float) -> int:
    """Delete the stored registrations of ``aors`` and the subscriptions to them, for a
    node that is not running (a running one ends them itself); returns how many
    subscriptions were deleted. Watchers find out at their next refresh (481)."""
    moved = set(aors)
    ended = tuple(row.id for row in store.load_subscriptions(now) if row.presentity in moved)
    store.write(StateChanges(bindings=dict.fromkeys(aors, ()), ended_subscriptions=ended))
    return len(ended)
