"""Mistakes made the way administrators make them: with intrafed commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from intrafed.cli import main
from intrafed.pki.stores import SELECTED
from intrafed.store import open_store


def intrafed(*arguments: str, home: Path | None = None) -> str:
    """Run an intrafed command in process; it must succeed."""
    command = [*arguments, *(["--home", str(home)] if home is not None else [])]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, f"{' '.join(command)}: {result.output}"
    return result.stdout


def reissue(home: Path, role: str, ca_dir: Path, *sign_options: str, select: bool = True) -> str:
    """A new certificate for the node from the CA in ``ca_dir``: csr, sign (with
    ``sign_options``), import, and select it when ``select``. Returns its thumbprint."""
    intrafed("pki", "csr", "--role", role, "--key-type", "ec-p256", "--replace", home=home)
    [request] = (home / "pki" / "requests").glob("*.csr")
    signed = home / "reissued.pem"
    intrafed("pki", "sign", "--ca", str(ca_dir), "--csr", str(request), "--out", str(signed),
             *sign_options)  # fmt: skip
    intrafed("pki", "import", "--store", "personal", str(signed), home=home)
    listing = json.loads(intrafed("pki", "list", "--json", home=home))
    [new] = [
        c["thumbprint"]
        for c in listing["certificates"]
        if c["store"] == "personal" and not c["selected"]
    ]
    if select:
        intrafed("pki", "select", new, home=home)
    return str(new)


def force_select(home: Path, thumbprint: str) -> None:
    """Select a certificate ``pki select`` refuses, as copying the files by hand does."""
    (home / "pki" / SELECTED).write_text(f"{thumbprint}\n")


def other_ca(root: Path) -> Path:
    """A second CA, which the other side does not trust."""
    ca_dir = root / "other-ca"
    intrafed("pki", "ca-create", "--cn", "Other Root CA", "--key-type", "ec-p256",
             "--out", str(ca_dir))  # fmt: skip
    return ca_dir


def promote(home: Path) -> None:
    """What a restart does to the configuration: staged becomes running."""
    with open_store(home) as store:
        store.promote()
