"""Certificates shared by the TLS tests: one trusted CA, one rogue CA and their leaves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from intrafed.pki import CertificateAuthority
from tests.lab_pki import Issued, issue_expired, issue_host, issue_without_eku, make_ca


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: Issued
    """ocs1.example.com, both EKUs: the node under test."""
    client: Issued
    """imp1.example.com, both EKUs: a well-configured federation peer."""
    server_only: Issued
    """serverAuth EKU only."""
    no_eku: Issued
    """No EKU extension at all (OpenSSL takes it as good for anything)."""
    expired: Issued
    """imp2.example.com, validity ended yesterday."""
    rogue_client: Issued
    """imp1.example.com issued by a CA nobody trusts."""
    rogue_server: Issued
    """ocs1.example.com issued by a CA nobody trusts."""


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = make_ca("Test Federation CA")
    rogue = make_ca("Rogue CA")
    return Pki(
        ca=ca,
        server=issue_host(
            ca, "ocs1.example.com", dns_names=("ocs1.example.com",), ip_addresses=("127.0.0.2",)
        ),
        client=issue_host(
            ca, "imp1.example.com", dns_names=("imp1.example.com", "imp.example.com")
        ),
        server_only=issue_host(
            ca, "sonly.example.com", dns_names=("sonly.example.com",), server_only=True
        ),
        no_eku=issue_without_eku(ca, "noeku.example.com"),
        expired=issue_expired(ca, "imp2.example.com", dns_names=("imp2.example.com",)),
        rogue_client=issue_host(rogue, "imp1.example.com", dns_names=("imp1.example.com",)),
        rogue_server=issue_host(rogue, "ocs1.example.com", dns_names=("ocs1.example.com",)),
    )
