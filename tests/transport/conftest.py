"""Certificates shared by the TLS tests: one trusted CA, one rogue CA and their leaves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.certs import CA, Leaf, make_ca


@dataclass(frozen=True)
class Pki:
    ca: CA
    server: Leaf
    """ocs1.example.com, both EKUs: the node under test."""
    client: Leaf
    """imp1.example.com, both EKUs: a well-configured federation peer."""
    server_only: Leaf
    """serverAuth EKU only."""
    no_eku: Leaf
    """No EKU extension at all (OpenSSL takes it as good for anything)."""
    expired: Leaf
    """imp2.example.com, validity ended yesterday."""
    rogue_client: Leaf
    """imp1.example.com issued by a CA nobody trusts."""
    rogue_server: Leaf
    """ocs1.example.com issued by a CA nobody trusts."""


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = make_ca("Test Federation CA")
    rogue = make_ca("Rogue CA")
    return Pki(
        ca=ca,
        server=ca.issue("ocs1.example.com", dns=("ocs1.example.com",), ips=("127.0.0.2",)),
        client=ca.issue("imp1.example.com", dns=("imp1.example.com", "imp.example.com")),
        server_only=ca.issue("sonly.example.com", dns=("sonly.example.com",), eku=("server",)),
        no_eku=ca.issue("noeku.example.com", eku=()),
        expired=ca.issue("imp2.example.com", dns=("imp2.example.com",), expired=True),
        rogue_client=rogue.issue("imp1.example.com", dns=("imp1.example.com",)),
        rogue_server=rogue.issue("ocs1.example.com", dns=("ocs1.example.com",)),
    )
