"""The loop a node runs on: uvloop when installed, unless the operator says asyncio."""

from __future__ import annotations

import asyncio

import pytest

from intrafed.transport import eventloop


def test_intrafed_event_loop_asyncio_keeps_asyncios_own_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTRAFED_EVENT_LOOP", "asyncio")
    assert eventloop.loop_factory() is None

    async def loop_type() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert issubclass(eventloop.run(loop_type()), asyncio.BaseEventLoop)


def test_uvloop_is_chosen_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("INTRAFED_EVENT_LOOP", raising=False)

    async def loop_type() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert eventloop.run(loop_type()) is uvloop.Loop
