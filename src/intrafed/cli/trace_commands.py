"""``intrafed trace``: a running node's SIP trace — switched on and off at run time, shown
as records, raw messages or the ladder between two nodes, followed live. The files are
JSON lines and pcap (``HOME/trace/sip.jsonl``, ``sip.pcap``) for sngrep or Wireshark."""

from __future__ import annotations

import contextlib
import datetime
import signal
from collections.abc import Iterable
from pathlib import Path

import click

from intrafed.cli.common import done, fail, home_option, json_option
from intrafed.cli.ladder import arrow, ladder_heading
from intrafed.control.client import ask
from intrafed.control.protocol import ControlError
from intrafed.observe.trace import TraceFilter, TraceRecord, ladder, summarize
from intrafed.observe.trace_files import follow, read_records, trace_directory


@click.group("trace")
def trace_group() -> None:
    """SIP trace of a running node: start, stop, show."""


def _filter_options(command: click.decorators.FC) -> click.decorators.FC:
    command = click.option("--method", help="Only this method (and its responses).")(command)
    return click.option(
        "--user", metavar="USER[@DOMAIN]", help="Only messages whose From or To is this user."
    )(command)


def _switch(home: Path, on: bool, user: str | None, method: str | None) -> dict[str, object]:
    try:
        answer = ask(home, "trace", state="on" if on else "off", user=user, method=method)
    except ControlError as exc:
        fail(str(exc))
    if not isinstance(answer, dict):
        fail(f"the node on {home} gave an unexpected answer to trace: {answer!r}")
    return answer


@trace_group.command("start")
@home_option()
@_filter_options
@json_option()
def start_command(home: Path, user: str | None, method: str | None, as_json: bool) -> None:
    """Record every SIP message the running node receives or sends (or those of USER /
    METHOD) until intrafed trace stop; files rotate at 16 MiB, four generations kept."""
    answer = _switch(home, True, user, method)
    done(
        as_json,
        answer,
        [f"tracing to {answer.get('directory')} (stop: intrafed trace stop --home {home})"],
    )


@trace_group.command("stop")
@home_option()
@json_option()
def stop_command(home: Path, as_json: bool) -> None:
    """Stop the running node's SIP trace (the files stay)."""
    answer = _switch(home, False, None, None)
    done(as_json, answer, [f"trace stopped; read it: intrafed trace show --home {home}"])


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


def _line(record: TraceRecord) -> str:
    summary = summarize(record.message)
    text = summary.first_line if summary else f"({len(record.message)} bytes, not SIP)"
    call_id = summary.call_id if summary else ""
    peer = f"{record.remote[0]}:{record.remote[1]}"
    way = "<-" if record.direction == "in" else "->"
    stamp = _stamp(record.at)
    return f"{stamp}  {record.node}  {way} {peer:<21} {record.transport:<4}  {text}  {call_id}"


def _print(records: Iterable[TraceRecord], keep: TraceFilter, as_json: bool, raw: bool) -> None:
    for record in records:
        if not keep.matches(record.message):
            continue
        if as_json:
            click.echo(record.to_json_line())
        else:
            click.echo(_line(record))
            if raw:
                click.echo(record.message.decode("utf-8", "replace").replace("\r\n", "\n"))


def _print_ladder(records: list[TraceRecord]) -> None:
    names = sorted({record.node for record in records})
    if len(names) < 2:
        fail("a ladder needs the traces of two nodes: add --peer-home DIR of the other node")
    left, right = names[0], names[1]
    click.echo(ladder_heading(left, right, time_width=12))
    for row in ladder(records):
        click.echo(f"{_stamp(row.at)}  {arrow(row.first_line, row.sender == left)}  {row.call_id}")


def _follow(home: Path, keep: TraceFilter, as_json: bool, raw: bool) -> None:
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    with contextlib.suppress(KeyboardInterrupt):
        _print(follow(trace_directory(home), stop=lambda: bool(stopping)), keep, as_json, raw)


@trace_group.command("show")
@home_option()
@click.option(
    "--peer-home",
    type=click.Path(file_okay=False, path_type=Path),
    help="The other node's home: its trace is merged in time order.",
)
@_filter_options
@click.option("--call-id", help="Only this Call-ID.")
@click.option("--ladder", "as_ladder", is_flag=True, help="The messages between the two nodes.")
@click.option("--raw", is_flag=True, help="Each message in full under its summary line.")
@click.option("--follow", "live", is_flag=True, help="Print new records as they come (Ctrl-C).")
@json_option("Print the records as JSON lines.")
def show_command(
    home: Path,
    peer_home: Path | None,
    user: str | None,
    method: str | None,
    call_id: str | None,
    as_ladder: bool,
    raw: bool,
    live: bool,
    as_json: bool,
) -> None:
    """Print the trace of the node of HOME (and of --peer-home), oldest first."""
    keep = TraceFilter(user=user, method=method, call_id=call_id)
    homes = [home] if peer_home is None else [home, peer_home]
    for node_home in homes:
        if not trace_directory(node_home).is_dir():
            fail(f"no trace in {node_home}: start one with intrafed trace start --home {node_home}")
    if live:
        if peer_home is not None or as_ladder:
            fail("--follow shows one node's records: drop --peer-home and --ladder")
        _follow(home, keep, as_json, raw)
        return
    bad: list[str] = []
    records = sorted(
        (
            record
            for node_home in homes
            for record in read_records(trace_directory(node_home), bad)
            if keep.matches(record.message)
        ),
        key=lambda record: record.at,
    )
    if as_ladder:
        _print_ladder(records)
    else:
        _print(records, TraceFilter(), as_json, raw)
    if bad:
        click.echo(f"skipped {len(bad)} damaged line(s): {', '.join(bad[:5])}", err=True)
