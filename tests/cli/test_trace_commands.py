"""``intrafed trace show``: records of one or two nodes, filtered, raw, as a ladder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from intrafed.cli.main import main
from intrafed.observe.trace import TraceRecord
from intrafed.observe.trace_files import TraceWriter, trace_directory
from tests.observe.test_trace import IMP, OCS, response, sip_message


def _trace(home: Path, records: list[TraceRecord]) -> None:
    home.mkdir()
    writer = TraceWriter(trace_directory(home))
    for record in records:
        writer.write(record)
    writer.close()


def _two_nodes(tmp_path: Path) -> tuple[Path, Path]:
    request, answer = sip_message(call_id="x1"), response(200, "OK", call_id="x1")
    other = sip_message("SUBSCRIBE", call_id="x2", user="carol")
    ocs, imp = tmp_path / "ocs1", tmp_path / "imp1"
    _trace(
        ocs,
        [
            TraceRecord(100.0, "ocs1.example.com", "out", "MTLS", OCS, IMP, request),
            TraceRecord(100.3, "ocs1.example.com", "in", "MTLS", OCS, IMP, answer),
            TraceRecord(101.0, "ocs1.example.com", "in", "TCP", OCS, ("127.0.0.9", 4000), other),
        ],
    )
    _trace(
        imp,
        [
            TraceRecord(100.1, "imp1.example.com", "in", "MTLS", IMP, OCS, request),
            TraceRecord(100.2, "imp1.example.com", "out", "MTLS", IMP, OCS, answer),
        ],
    )
    return ocs, imp


def test_show_merges_two_nodes_in_time_order_and_filters(tmp_path: Path) -> None:
    ocs, imp = _two_nodes(tmp_path)
    both = ["trace", "show", "--home", str(ocs), "--peer-home", str(imp)]
    result = CliRunner().invoke(main, both)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines] == [
        "ocs1.example.com",
        "imp1.example.com",
        "imp1.example.com",
        "ocs1.example.com",
        "ocs1.example.com",
    ]
    assert "-> 127.0.0.3:5061" in lines[0]
    assert "MESSAGE sip:alice@example.com" in lines[0]
    only_carol = CliRunner().invoke(main, ["trace", "show", "--home", str(ocs), "--user", "carol"])
    assert len(only_carol.output.splitlines()) == 1
    assert "SUBSCRIBE" in only_carol.output


def test_show_ladder_draws_each_crossing_once(tmp_path: Path) -> None:
    ocs, imp = _two_nodes(tmp_path)
    result = CliRunner().invoke(
        main, ["trace", "show", "--home", str(ocs), "--peer-home", str(imp), "--ladder"]
    )
    assert result.exit_code == 0, result.output
    heading, *arrows = result.output.splitlines()
    assert heading.split()[1:] == ["imp1.example.com", "ocs1.example.com"]
    assert len(arrows) == 2
    assert "|<-- MESSAGE sip:alice@example.com" in arrows[0]
    assert "-- 200 OK (MESSAGE)" in arrows[1]
    assert arrows[1].rstrip().endswith("x1")
    assert ">|" in arrows[1]


def test_show_json_and_raw(tmp_path: Path) -> None:
    ocs, _ = _two_nodes(tmp_path)
    as_json = CliRunner().invoke(main, ["trace", "show", "--home", str(ocs), "--json"])
    records = [json.loads(line) for line in as_json.output.splitlines()]
    assert [record["dir"] for record in records] == ["out", "in", "in"]
    one_call = ["trace", "show", "--home", str(ocs), "--call-id", "x2", "--raw"]
    raw = CliRunner().invoke(main, one_call)
    assert "Call-ID: x2\n" in raw.output


def test_show_without_a_trace_or_a_second_node_says_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = CliRunner().invoke(main, ["trace", "show", "--home", str(empty)])
    assert missing.exit_code == 2
    assert f"intrafed trace start --home {empty}" in missing.output
    ocs, _ = _two_nodes(tmp_path)
    lonely = CliRunner().invoke(main, ["trace", "show", "--home", str(ocs), "--ladder"])
    assert lonely.exit_code == 2
    assert "--peer-home" in lonely.output


def test_start_on_a_home_with_no_running_node_names_the_start_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["trace", "start", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert f"intrafed service start --home {tmp_path}" in result.output
