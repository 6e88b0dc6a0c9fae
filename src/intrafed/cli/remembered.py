"""Starting a node whose PostgreSQL database cannot be reached: the home remembers the
configuration the node last started with (``HOME/running-config.json``, readable by its
owner alone: it holds the users' digest hashes), so the node comes up degraded on it —
its listeners serve what needs no write — and reads its stored state once the database
answers (``Node.degraded``)."""

from __future__ import annotations

import json
from pathlib import Path

from intrafed.config.document import from_document, to_document
from intrafed.config.model import ConfigError, NodeConfig
from intrafed.store import Store, on_postgresql, open_unreachable_store

FILENAME = "running-config.json"


def remember(home: Path, config: NodeConfig) -> None:
    """``config`` started: the one to start with while the database is away (a node on
    PostgreSQL; an embedded store is never away)."""
    if not on_postgresql(home):
        return
    temporary = home / f".{FILENAME}.tmp"
    temporary.touch(mode=0o600)
    temporary.write_text(json.dumps(to_document(config)))
    temporary.replace(home / FILENAME)


def remembered(home: Path) -> NodeConfig | None:
    """The configuration the node last started with, or None (never started, or a file
    this version cannot read)."""
    try:
        return from_document(json.loads((home / FILENAME).read_text()))
    except (OSError, ValueError, ConfigError):
        return None


def unreachable_store(home: Path, error: ConfigError) -> tuple[Store, NodeConfig] | None:
    """The store of ``home``, connecting in the background, and the configuration to
    start with, when its database could not be opened (``error``) but the node started
    before; else None."""
    config = remembered(home)
    if config is None:
        return None
    store = open_unreachable_store(home, config.identity, error.message)
    return None if store is None else (store, config)
