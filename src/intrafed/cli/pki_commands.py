"""``intrafed pki …``: certificates for TLS and MTLS, as the seed's procedures need them."""

from __future__ import annotations

import click


@click.group("pki")
def pki_group() -> None:
    """Certificate authority, CSRs, certificate stores, validation and selection."""
