"""Every RFC 4475 / RFC 5118 torture message gets the verdict of its VERDICTS.tsv.

The check goes through the admin's tool, ``intrafed sip parse FILE --json``, exactly as
the foundation issue asks; MANIFEST.tsv beside each file says what the message tests.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import CONFORMANCE


def _cases() -> list[tuple[Path, str, str]]:
    cases = []
    for suite in ("rfc4475", "rfc5118"):
        with (CONFORMANCE / suite / "VERDICTS.tsv").open(newline="") as table:
            for row in csv.DictReader(table, delimiter="\t"):
                cases.append((CONFORMANCE / suite / row["file"], row["verdict"], row["status"]))
    return cases


CASES = _cases()


def test_corpus_is_complete() -> None:
    assert len(CASES) == 62
    assert all(path.exists() for path, _, _ in CASES)


@pytest.mark.parametrize(
    ("path", "verdict", "status"), CASES, ids=[f"{p.parent.name}/{p.name}" for p, _, _ in CASES]
)
def test_verdict_through_sip_parse(path: Path, verdict: str, status: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "intrafed", "sip", "parse", str(path), "--json"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.stderr == b""
    output = json.loads(result.stdout)
    if verdict == "either":
        assert result.returncode in (0, 1)
        assert output["valid"] is (result.returncode == 0)
        return
    expected_exit = 0 if verdict == "valid" else 1
    assert (result.returncode, output["valid"]) == (expected_exit, verdict == "valid"), output
    if verdict == "invalid":
        assert output["reason"]
        if status:
            assert output["status"] == int(status), output
