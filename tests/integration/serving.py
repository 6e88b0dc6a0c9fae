"""A node of a home run in-process with its control API, as ``intrafed serve`` runs it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from intrafed.control.server import ControlServer
from intrafed.core.meter import Meter
from intrafed.node import Node, tls_contexts_of
from intrafed.node_control import NodeControl, reload_staged
from intrafed.store import open_store


@contextlib.asynccontextmanager
async def serving(home: Path, meter: Meter | None = None) -> AsyncIterator[Node]:
    """The node of ``home`` (counting into ``meter`` when given) with its control socket
    answering, until the block ends."""
    with open_store(home) as store:
        tls = tls_contexts_of(home, store.load("running"))
        node = Node.from_home(home, store, meter=meter)
        await node.start()
        control = NodeControl(
            home, node, time.time(), lambda: reload_staged(home, node, store, tls)
        )
        server = ControlServer(home, control)
        assert await server.start()
        try:
            yield node
        finally:
            await server.close()
            control.close()
            await node.stop(grace=1.0)
