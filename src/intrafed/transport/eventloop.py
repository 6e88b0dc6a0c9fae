"""The event loop a node runs on: uvloop when it is installed (the ``fast`` extra), else
asyncio's own. ``INTRAFED_EVENT_LOOP=asyncio`` chooses asyncio's even with uvloop there."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when installed and not turned off, else None (asyncio)."""
    if os.environ.get("INTRAFED_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")  # optional: the ``fast`` extra
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory`` chooses."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
