"""Paths the tests share: the repository, the conformance corpus, the examples."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFORMANCE = REPO / "tests" / "conformance"
EXAMPLES = REPO / "examples"
