"""One lab CA and one rogue CA for the whole pki test session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from intrafed.pki import CertificateAuthority
from tests.lab_pki import make_ca


@dataclass(frozen=True)
class Cas:
    lab: CertificateAuthority
    """The CA both partitions trust."""
    rogue: CertificateAuthority
    """A CA nobody trusts."""


@pytest.fixture(scope="session")
def cas() -> Cas:
    return Cas(make_ca("Lab Root CA"), make_ca("Rogue CA"))
