"""A background node's log, over a real ``intrafed service start``: JSON lines carrying the
record's structured fields, a log file that logrotate can move away (the node writes a new
one), and ``service status`` telling how long the node has run."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from intrafed.cli.logs import JsonFormatter, message_of
from tests.homes import staged_ocs_home
from tests.integration.peers import free_port
from tests.integration.test_service_restart import intrafed

NODE_IP = "127.0.0.232"


def records(log: Path) -> list[dict[str, Any]]:
    """Every line of ``log``, each of which must be one JSON object."""
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_background_node_logs_json_lines_and_follows_logrotate_moving_its_file(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ocs1"
    port = free_port(NODE_IP)
    staged_ocs_home(home, NODE_IP, port)
    started = intrafed(
        "service", "start", "--home", str(home), "--log-format", "JSON", "--log-level", "debug"
    )
    assert started.returncode == 0, started.stderr
    log, rotated = home / "intrafed.log", home / "intrafed.log.1"
    try:
        ready = f"ocs1.example.com listening on TCP {NODE_IP}:{port}"
        [listening] = [record for record in records(log) if record["message"] == ready]
        assert listening["level"] == "INFO"
        assert listening["logger"] == "intrafed.cli.serve"
        assert listening["node"] == "ocs1.example.com"
        assert listening["listeners"] == {"TCP": [NODE_IP, port]}
        assert listening["time"].endswith("+00:00")
        first = json.loads((home / "status.json").read_text())["started"]

        log.rename(rotated)  # what logrotate does (without copytruncate)
        reloaded = intrafed("service", "reload", "--home", str(home))
        assert reloaded.returncode == 0, reloaded.stderr
        assert [r["message"] for r in records(log)] == ["reloaded the staged configuration"]
        assert "reloaded the staged configuration" not in rotated.read_text()

        shown = intrafed("service", "status", "--home", str(home), "--json")
        assert shown.returncode == 0, shown.stderr
        assert isinstance(json.loads(shown.stdout)["uptime_seconds"], int)
        # A reload is not a start: the node's uptime goes on.
        assert json.loads((home / "status.json").read_text())["started"] == first
        text = intrafed("service", "status", "--home", str(home))
        assert text.stdout.startswith("running (pid ")
        assert ", up 0h 00m " in text.stdout.splitlines()[0]
    finally:
        stopped = intrafed("service", "stop", "--home", str(home))
    assert stopped.returncode == 0, stopped.stderr
    assert "stopping: finishing pending transactions" in [r["message"] for r in records(log)]


def test_json_lines_carry_extra_fields_and_a_traceback() -> None:
    logger, written = logging.Logger("intrafed.test"), io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        raise ValueError("bad")
    except ValueError:
        extra = {"user": "alice", "source": ("127.0.0.9", 5070)}
        logger.warning("auth failed: %s", "alice", exc_info=True, extra=extra)
    [line] = written.getvalue().splitlines()
    fields = json.loads(line)
    assert fields["message"] == "auth failed: alice"
    assert (fields["level"], fields["logger"]) == ("WARNING", "intrafed.test")
    assert (fields["user"], fields["source"]) == ("alice", ["127.0.0.9", 5070])
    assert fields["exception"].endswith("ValueError: bad")
    assert "args" not in fields
    assert message_of(line) == "auth failed: alice"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2026-12-03 10:00:00,123 CRITICAL intrafed.cli: cannot start", "cannot start"),
        ("Traceback (most recent call last):", "Traceback (most recent call last):"),
    ],
)
def test_the_message_of_a_text_log_line(line: str, message: str) -> None:
    assert message_of(line) == message
