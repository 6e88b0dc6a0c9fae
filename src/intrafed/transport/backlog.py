"""How long the bytes a connection reads had been waiting in its socket, fed ``now``.

Sans-IO: after each read the connection reports how many bytes it read and how many the
kernel still holds unread (FIONREAD). A node behind on a busy connection reads a full
buffer each time while the kernel holds more: the time those bytes spend there is a queue
delay the read time alone does not show. Each report marks the stream offset the kernel
had received by then; the bytes of a later read were waiting at least since the earliest
mark that covers them.
"""

from __future__ import annotations

from collections import deque

MAX_MARKS = 64
"""Marks kept per connection; beyond, a read is not marked (later reads then look younger
than they are, never older)."""


class ReadBacklog:
    """When the bytes of each read had reached the socket, at the latest."""

    __slots__ = ("_marks", "_read")

    def __init__(self) -> None:
        self._read = 0
        self._marks: deque[tuple[int, float]] = deque()
        """(stream offset the kernel had received, loop time), both increasing."""

    def read(self, size: int, unread: int, now: float) -> float:
        """The loop time by which the ``size`` bytes read at ``now`` (``unread`` more left
        in the kernel) had all been received: ``now`` unless an earlier read saw them
        waiting."""
        self._read += size
        received = self._read + unread
        marks = self._marks
        if (not marks or received > marks[-1][0]) and len(marks) < MAX_MARKS:
            marks.append((received, now))
        while marks and marks[0][0] < self._read:
            marks.popleft()
        return marks[0][1] if marks else now
