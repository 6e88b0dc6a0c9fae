"""The Trace page's drawing: lifelines by name, arrows in time order, the newest kept."""

from __future__ import annotations

from intrafed.console.ladder_view import COLUMN_GAP, MAX_ARROWS, ROW_HEIGHT, layout
from intrafed.observe.trace import LadderRow


def _row(
    at: float, sender: str, receiver: str, line: str = "MESSAGE sip:bob@example.com"
) -> LadderRow:
    return LadderRow(at, sender, receiver, line, "a84b4c76e66710")


def test_two_nodes_two_arrows() -> None:
    drawing = layout(
        [
            _row(1.0, "imp1.example.com", "ocs1.example.com"),
            _row(1.1, "ocs1.example.com", "imp1.example.com", "200 OK (MESSAGE)"),
        ]
    )
    left, right = drawing.lifelines
    assert (left.name, right.name) == ("imp1.example.com", "ocs1.example.com")
    assert right.x - left.x == COLUMN_GAP
    request, answer = drawing.arrows
    assert request.rightwards
    assert not answer.rightwards
    assert (request.x1, request.x2) == (left.x, right.x)
    assert answer.y - request.y == ROW_HEIGHT
    assert request.label == "MESSAGE sip:bob@example.com"
    assert request.call_id == "a84b4c76e667"
    assert request.label_x == (left.x + right.x) // 2
    assert drawing.width > right.x
    assert drawing.height > answer.y


def test_only_the_newest_arrows_are_drawn_and_long_lines_are_cut() -> None:
    rows = [
        _row(float(n), "a.example.com", "b.example.com", f"NOTIFY {n} " + "x" * 80)
        for n in range(100)
    ]
    drawing = layout(rows)
    assert len(drawing.arrows) == MAX_ARROWS
    assert drawing.arrows[0].label.startswith(f"NOTIFY {100 - MAX_ARROWS} ")
    assert all(len(arrow.label) <= 52 and arrow.label.endswith("...") for arrow in drawing.arrows)


def test_no_rows_no_arrows() -> None:
    drawing = layout([])
    assert drawing.arrows == ()
    assert drawing.lifelines == ()
