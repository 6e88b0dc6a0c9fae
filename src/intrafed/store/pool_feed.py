"""The pool events of PostgreSQL (``store.pool_events``): triggers ``NOTIFY`` each change of
a binding, a publication or a member's running configuration when its transaction commits;
each member ``LISTEN``s on a connection of its own, in a thread, and hands the events of the
other members to its node. Nothing on a request's path waits for it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from intrafed.config.document import from_document, member_part
from intrafed.config.model import ConfigError, Role
from intrafed.store.base import PublicationRow, SubscriptionRow
from intrafed.store.pool_config import Member
from intrafed.store.pool_events import (
    MemberBindings,
    MemberGone,
    MemberListening,
    MemberPublished,
    MemberUnpublished,
    PoolEvent,
    SubscriptionsAdopted,
)

logger = logging.getLogger(__name__)
_Listening = psycopg.Connection[Any]

BINDINGS, PUBLICATIONS, MEMBERS = "intrafed_bindings", "intrafed_publications", "intrafed_members"
WAIT = 0.5
"""Seconds between looks at whether the feed was closed, while no event comes."""
RECONNECT_INTERVAL = 1.0
"""Seconds between attempts to connect again after the connection broke."""
LIVENESS_INTERVAL = 2.0
"""Seconds between looks at which members still run."""
GONE_AFTER = 6.0
"""Seconds a member must be seen not running before it counts as gone (a database
connection that breaks for a moment does not hand its subscriptions to another member)."""
MEMBER_LOCK = 0x696E_7470
"""The class of the advisory locks that say a member runs: each member's feed holds the
one of its name for as long as its connection lives (a process that dies drops it)."""

# The channels are spelled out in the migrations: an applied migration never changes.
MIGRATIONS = (
    """CREATE FUNCTION intrafed_bindings_of(changed_aor TEXT, changed_member TEXT)
    RETURNS void LANGUAGE sql AS $$
        SELECT pg_notify('intrafed_bindings', json_build_object(
            'aor', changed_aor, 'member', changed_member,
            'expires_at', (SELECT coalesce(max(expires_at), 0) FROM bindings
                           WHERE aor = changed_aor AND member = changed_member))::text)
    $$""",
    """CREATE FUNCTION intrafed_binding_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- A contact that moved to another member: the old member holds it no more.
        IF TG_OP <> 'INSERT' THEN PERFORM intrafed_bindings_of(OLD.aor, OLD.member); END IF;
        IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.member <> NEW.member) THEN
            PERFORM intrafed_bindings_of(NEW.aor, NEW.member);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER binding_changed AFTER INSERT OR UPDATE OR DELETE ON bindings
    FOR EACH ROW EXECUTE FUNCTION intrafed_binding_changed()""",
    """CREATE FUNCTION intrafed_publication_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('intrafed_publications', json_build_object('ended', true,
                'etag', OLD.etag, 'aor', OLD.aor,
                'by', current_setting('application_name'))::text);
        ELSE
            PERFORM pg_notify('intrafed_publications', json_build_object('row', row_to_json(NEW),
                'by', current_setting('application_name'))::text);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER publication_changed AFTER INSERT OR UPDATE OR DELETE ON publications
    FOR EACH ROW EXECUTE FUNCTION intrafed_publication_changed()""",
    """CREATE FUNCTION intrafed_member_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('intrafed_members', json_build_object('member', NEW.member)::text);
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER member_changed AFTER INSERT OR UPDATE ON config
    FOR EACH ROW WHEN (NEW.kind = 'running' AND NEW.pool IS NOT NULL)
    EXECUTE FUNCTION intrafed_member_changed()""",
)
"""The triggers (appended to the store's migrations)."""

_MEMBERS = (
    "SELECT member, document FROM config WHERE pool = %s AND kind = 'running' AND member <> %s"
)
_ADOPT = (
    "UPDATE subscriptions SET member = %s WHERE member = %s RETURNING id, presentity, watcher, "
    "event, call_id, local_tag, remote_tag, local_party, remote_party, remote_target, "
    "route_set, local_contact, expires_at, local_cseq, remote_cseq"
)
_RUNS = "SELECT NOT pg_try_advisory_lock(%s, hashtext(%s))"
_BINDINGS = (
    "SELECT aor, member, max(expires_at) FROM bindings WHERE member = ANY(%s) "
    "AND expires_at > %s GROUP BY aor, member"
)


def listening(member: str, document: dict[str, Any]) -> MemberListening | None:
    """Where a member whose running configuration is ``document`` listens (None when the
    document cannot be read)."""
    try:
        config = from_document(member_part(document))
    except ConfigError as exc:
        logger.warning("pool member %s: unreadable configuration: %s", member, exc)
        return None
    identity = config.identity
    if config.role is Role.OCS:
        found = tuple((c.transport, c.port) for c in config.connections)
    else:
        ports = config.listeners
        found = () if ports is None else (("TCP", ports.tcp), ("MTLS", ports.peer_auth))
    return MemberListening(member, identity.ip, found)


class PostgresPoolFeed:
    """``PoolFeed`` over a connection of its own that ``LISTEN``s."""

    def __init__(self, conninfo: str, member: Member, application_name: str) -> None:
        self._conninfo = conninfo
        self._member = member
        self._application_name = application_name
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._members: set[str] = set()
        self._held: set[tuple[str, str]] = set()
        """(AOR, member) of the bindings delivered live, to end those gone meanwhile."""
        self._down = False
        self._gone: set[str] = set()
        self._missing: dict[str, float] = {}
        """Since when (monotonic) each member not running yet not gone was seen so."""
        self._running = False
        """Whether this member holds its own lock (it shows the others it runs)."""

    def start(self, deliver: Callable[[PoolEvent], None]) -> list[PoolEvent]:
        """What is true now (empty when the database cannot be reached: the thread
        delivers it once it can), then start the thread that delivers the changes to
        ``deliver``."""
        connection: _Listening | None = None
        now: list[PoolEvent] = []
        try:
            connection = self._listen()
            now = self._snapshot(connection)
        except psycopg.Error as exc:
            self._failed(exc)
            if connection is not None:
                connection.close()
            connection = None
        self._thread = threading.Thread(
            target=self._run, args=(deliver, connection), name="intrafed-pool-feed", daemon=True
        )
        self._thread.start()
        return now

    def close(self) -> None:
        """Stop the thread (within ``WAIT`` seconds)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(WAIT * 4)

    def _run(self, deliver: Callable[[PoolEvent], None], connection: _Listening | None) -> None:
        while not self._closed.is_set():
            try:
                if connection is None:
                    connection = self._listen()
                    for now in self._snapshot(connection):
                        deliver(now)
                look = time.monotonic() + LIVENESS_INTERVAL
                while not self._closed.is_set():
                    # Taken whole before handling: the generator holds the connection.
                    for notice in list(connection.notifies(timeout=WAIT, stop_after=1)):
                        event = self._event(connection, notice.channel, notice.payload)
                        if event is not None:
                            deliver(event)
                    if time.monotonic() >= look:
                        look = time.monotonic() + LIVENESS_INTERVAL
                        for change in self._liveness(connection):
                            deliver(change)
            except psycopg.Error as exc:
                self._failed(exc)
                self._closed.wait(RECONNECT_INTERVAL)
            if connection is not None:
                connection.close()
                connection = None

    def _listen(self) -> _Listening:
        """A connection that listens on the pool's channels."""
        connection = psycopg.connect(self._conninfo, autocommit=True)
        for channel in (MEMBERS, BINDINGS, PUBLICATIONS):
            connection.execute(f"LISTEN {channel}")
        self._running = not self._runs(connection, self._member.name)
        if self._down:
            logger.info("pool feed: connected again")
            self._down = False
        return connection

    def _runs(self, connection: _Listening, name: str) -> bool:
        """Whether the member ``name`` runs (another connection holds its lock); when it
        does not, this connection holds the lock now."""
        row = connection.execute(_RUNS, (MEMBER_LOCK, name)).fetchone()
        return bool(row and row[0])

    def _liveness(self, connection: _Listening) -> list[PoolEvent]:
        """Who stopped running since the last look (their subscriptions adopted: the first
        member to look takes them all), and who runs again."""
        if not self._running:
            self._running = not self._runs(connection, self._member.name)
        events: list[PoolEvent] = []
        now = time.monotonic()
        for name in sorted(self._members):
            if self._runs(connection, name):
                self._missing.pop(name, None)
                if name in self._gone:
                    self._gone.discard(name)
                    events += self._listening(connection, name)
                continue
            connection.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (MEMBER_LOCK, name))
            if name in self._gone or now - self._missing.setdefault(name, now) < GONE_AFTER:
                continue
            del self._missing[name]
            self._gone.add(name)
            events.append(MemberGone(name))
            rows = connection.execute(_ADOPT, (self._member.name, name)).fetchall()
            if rows:
                logger.info("adopted %d subscriptions of %s, which is gone", len(rows), name)
                events.append(SubscriptionsAdopted(tuple(SubscriptionRow(*row) for row in rows)))
        return events

    def _listening(self, connection: _Listening, name: str) -> list[PoolEvent]:
        """Where the member ``name`` listens, as its running configuration says."""
        row = connection.execute(
            "SELECT document FROM config WHERE member = %s AND kind = 'running' AND pool = %s",
            (name, self._member.pool),
        ).fetchone()
        event = listening(name, row[0]) if row is not None else None
        return [event] if event is not None else []

    def _failed(self, error: psycopg.Error) -> None:
        """One warning per outage, not one per attempt."""
        if not self._down:
            logger.warning("pool feed: %s; connecting again", " ".join(str(error).split()))
            self._down = True

    def _snapshot(self, connection: _Listening) -> list[PoolEvent]:
        """Every other member and the users whose flows they hold now (and the end of
        those the node was told of that are gone)."""
        rows = connection.execute(_MEMBERS, (self._member.pool, self._member.name)).fetchall()
        events: list[PoolEvent] = []
        for name, document in rows:
            self._members.add(name)
            event = listening(name, document)
            if event is not None:
                events.append(event)
        held = connection.execute(_BINDINGS, (sorted(self._members), time.time())).fetchall()
        gone = self._held - {(aor, member) for aor, member, _ in held}
        events += [self._held_as(MemberBindings(aor, member, 0.0)) for aor, member in sorted(gone)]
        events += [self._held_as(MemberBindings(*row)) for row in held]
        return events

    def _held_as(self, event: MemberBindings) -> MemberBindings:
        """``event``, noted in what the node was told."""
        if event.expires_at > 0:
            self._held.add((event.aor, event.member))
        else:
            self._held.discard((event.aor, event.member))
        return event

    def _event(self, connection: _Listening, channel: str, payload: str) -> PoolEvent | None:
        data = json.loads(payload)
        if channel == BINDINGS:
            if data["member"] not in self._members:
                return None
            return self._held_as(
                MemberBindings(data["aor"], data["member"], float(data["expires_at"]))
            )
        if channel == PUBLICATIONS:
            if data["by"] == self._application_name:
                return None
            if data.get("ended"):
                return MemberUnpublished(data["aor"], data["etag"])
            return MemberPublished(PublicationRow(**data["row"]))
        name = data["member"]
        if name == self._member.name:
            return None
        self._members.add(name)
        self._gone.discard(name)
        found = self._listening(connection, name)
        return found[0] if found else None
