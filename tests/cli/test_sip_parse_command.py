"""``intrafed sip parse``: the admin's check of a message copied from a log."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from intrafed import __version__
from intrafed.cli import main
from tests.paths import CONFORMANCE, EXAMPLES


def run(*arguments: str, stdin: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(arguments), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_version_and_help() -> None:
    assert run("--version") == (0, f"intrafed, version {__version__}\n")
    code, output = run("sip", "parse", "--help")
    assert code == 0
    assert "--json" in output


def test_valid_request_as_json_names_kind_method_uri_and_headers() -> None:
    code, output = run("sip", "parse", str(EXAMPLES / "message.sip"), "--json")
    assert code == 0
    described = json.loads(output)
    assert described["valid"] is True
    assert described["kind"] == "request"
    assert described["method"] == "MESSAGE"
    assert described["request_uri"] == "sip:bob@example.com"
    assert described["cseq"] == {"number": 17, "method": "MESSAGE"}
    assert described["from"] == {"uri": "sip:alice@example.com", "tag": "a73kszlfl"}
    assert [via["branch"] for via in described["via"]] == [
        "z9hG4bK.imp1.7f3a9c2e1d",
        "z9hG4bK.alice.4b1d2e",
    ]
    assert {"name": "Max-Forwards", "value": "69"} in described["headers"]
    assert described["body_length"] == 73


def test_valid_response_from_standard_input() -> None:
    code, output = run("sip", "parse", "-", "--json", stdin=(EXAMPLES / "ok.sip").read_bytes())
    assert code == 0
    described = json.loads(output)
    assert (described["kind"], described["status"], described["reason"]) == ("response", 200, "OK")


def test_text_output_lists_the_headers() -> None:
    code, output = run("sip", "parse", str(EXAMPLES / "subscribe.sip"))
    assert code == 0
    assert output.startswith("valid 'SUBSCRIBE sip:bob@example.com SIP/2.0'")
    assert "  Event: presence\n" in output


def test_invalid_message_exits_1_with_status_and_reason() -> None:
    code, output = run("sip", "parse", str(CONFORMANCE / "rfc4475" / "mismatch01.dat"), "--json")
    assert code == 1
    assert json.loads(output) == {
        "valid": False,
        "status": 400,
        "reason": "CSeq method INVITE does not match request method OPTIONS",
    }


def test_invalid_message_in_text_is_one_line() -> None:
    code, output = run("sip", "parse", str(CONFORMANCE / "rfc4475" / "badvers.dat"))
    assert (code, output) == (1, "invalid: 505 SIP version SIP/7.0 is not supported\n")


def test_binary_garbage_is_invalid_not_a_crash() -> None:
    code, output = run("sip", "parse", "-", "--json", stdin=bytes(range(256)) * 4)
    assert code == 1
    assert json.loads(output)["valid"] is False


def test_undecodable_bytes_in_a_valid_message_still_print() -> None:
    data = (EXAMPLES / "ok.sip").read_bytes().replace(b"OK", b"OK \xff\xfe", 1)
    code, output = run("sip", "parse", "-", stdin=data)
    assert code == 0
    assert "\\xff\\xfe" in output
    code, output = run("sip", "parse", "-", "--json", stdin=data)
    assert code == 0
    assert json.loads(output)["reason"] == "OK \udcff\udcfe"


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = run("sip", "parse", str(tmp_path / "absent.sip"))
    assert code == 2
    assert "No such file" in output
