"""Mistakes made the way administrators make them: with intrafed commands."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from intrafed.check import SeedDeployment
from intrafed.cli import main
from intrafed.config.model import NodeIdentity, Role
from intrafed.pki import CertificateAuthority, make_csr
from intrafed.pki.certificates import certificates_pem, private_key_pem
from intrafed.pki.stores import SELECTED
from intrafed.store import open_store

OTHER_IP = "127.0.0.79"
"""An address where no node of the deployment is."""


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


# -- one mistake per rule of the catalogue ---------------------------------------------


@dataclass(frozen=True)
class Checked:
    """What a mistake asks to check: the home, its peers, and the moment."""

    home: Path
    peers: tuple[Path, ...]
    now: datetime.datetime | None = None


Mistake = Callable[[SeedDeployment, Path], Checked | None]
MISTAKES: dict[str, Mistake] = {}
"""Per rule id, the mistake that breaches it in a copy of the seed deployment (made with
intrafed commands where the CLI can make it); None means: check OCS with IM&P as peer."""


def mistake(rule: str) -> Callable[[Mistake], Mistake]:
    def register(function: Mistake) -> Mistake:
        MISTAKES[rule] = function
        return function

    return register


def replace_ocs_route(seed: SeedDeployment, *options: str) -> None:
    ocs = seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS", *options,
             home=ocs)  # fmt: skip


def replace_hostauth(seed: SeedDeployment, *flags: str) -> None:
    ocs = seed.ocs.home
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=ocs)
    intrafed("config", "hostauth", "add", "--ip", seed.imp.ip, *flags, home=ocs)


def ocs_connection(seed: SeedDeployment, verb: str, transport: str, port: int, ip: str) -> None:
    intrafed("config", "connection", verb, "--transport", transport, "--port", str(port),
             "--ip", ip, home=seed.ocs.home)  # fmt: skip


@mistake("domain.none")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    intrafed("config", "user", "remove", "alice@example.com", home=seed.imp.home)
    intrafed("config", "domain", "remove", "example.com", home=seed.imp.home)
    return Checked(seed.imp.home, (seed.ocs.home,))


@mistake("domain.mismatch")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    """OCS serves example.org too, and has its route to IM&P for it; IM&P does not serve it."""
    ocs = seed.ocs.home
    intrafed("config", "domain", "add", "example.org", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.org", "--transport", "TLS", "--port",
             str(seed.imp.tls_port), "--fqdn", seed.imp.fqdn, home=ocs)  # fmt: skip
    return Checked(seed.imp.home, (ocs,))


@mistake("listener.ocs-none")
def _(seed: SeedDeployment, tmp: Path) -> None:
    ocs_connection(seed, "remove", "TCP", seed.ocs.tcp_port, seed.ocs.ip)
    ocs_connection(seed, "remove", "MTLS", seed.ocs.tls_port, seed.ocs.ip)


@mistake("listener.ocs-mtls")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """The connection on the MTLS port made TLS, and only the FQDN authorized."""
    ocs_connection(seed, "remove", "MTLS", seed.ocs.tls_port, seed.ocs.ip)
    ocs_connection(seed, "remove", "TLS", seed.ocs.client_tls_port, seed.ocs.ip)
    ocs_connection(seed, "add", "TLS", seed.ocs.tls_port, seed.ocs.ip)
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=seed.ocs.home)


@mistake("listener.imp-server-auth")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """Server Auth on 5061 (where OCS's route goes) and Peer Auth moved away."""
    intrafed("config", "listener", "set", "--peer-auth", str(seed.imp.client_tls_port),
             "--server-auth", "5061", home=seed.imp.home)  # fmt: skip
    replace_ocs_route(seed, "--port", "5061", "--fqdn", seed.imp.fqdn)


@mistake("listener.clash")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """OCS's TCP connection on All, on the port of IM&P's TCP listener."""
    ocs_connection(seed, "remove", "TCP", seed.ocs.tcp_port, seed.ocs.ip)
    ocs_connection(seed, "add", "TCP", seed.imp.tcp_port, "All")


@mistake("route.missing")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "route", "remove", "--domain", "example.com", home=seed.ocs.home)


@mistake("route.phone-uri")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", str(seed.imp.tls_port), "--fqdn", seed.imp.fqdn,
                      "--phone-uri")  # fmt: skip


@mistake("route.replace-host")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", str(seed.imp.tls_port), "--fqdn", seed.imp.fqdn,
                      "--replace-host")  # fmt: skip


@mistake("route.unresolved")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hosts", "remove", seed.imp.fqdn, home=seed.ocs.home)


@mistake("route.address")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hosts", "remove", seed.imp.fqdn, home=seed.ocs.home)
    intrafed("config", "hosts", "add", seed.imp.fqdn, OTHER_IP, home=seed.ocs.home)


@mistake("route.principal")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", str(seed.imp.tls_port), "--fqdn", "imp9.example.com")
    intrafed("config", "hosts", "add", "imp9.example.com", seed.imp.ip, home=seed.ocs.home)


@mistake("route.port")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", str(seed.imp.client_tls_port), "--fqdn", seed.imp.fqdn)


@mistake("hostauth.fqdn")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """Only the FQDN entry: the IP entry becomes Outbound Only, so nothing trusts IM&P."""
    intrafed("config", "hostauth", "remove", "--fqdn", seed.imp.fqdn, home=seed.ocs.home)
    replace_hostauth(seed, "--outbound-only")


@mistake("hostauth.ip")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """A TCP federation by IP (IM&P's ACL trusts OCS) whose OCS lost the IP entry."""
    imp, ocs = seed.imp.home, seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TCP", "--port",
             str(seed.imp.tcp_port), "--ip", seed.imp.ip, home=ocs)  # fmt: skip
    intrafed("config", "route", "remove", "--domain", "example.com", home=imp)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TCP", "--port",
             str(seed.ocs.tcp_port), "--ip", seed.ocs.ip, home=imp)  # fmt: skip
    intrafed("config", "acl", "add", "--ip", seed.ocs.ip, home=imp)
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=ocs)
    intrafed("config", "hostauth", "remove", "--fqdn", seed.imp.fqdn, home=ocs)


IMP2 = "imp2.example.com"
CAROL, CAROL_PASSWORD = "carol@example.com", "carol-secret"
"""A second IM and Presence node (on ``OTHER_IP``, the seed's ports) and its user."""


@mistake("hostauth.peer-node")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    """imp2, set up as the seed sets up imp1 (carol homed on it); OCS never authorized it."""
    imp2 = seed.root / "imp2"
    intrafed("init", "--role", "imp", "--fqdn", IMP2, "--ip", OTHER_IP, home=imp2)
    intrafed("config", "domain", "add", "example.com", home=imp2)
    intrafed("config", "listener", "set", "--tcp", str(seed.imp.tcp_port), "--peer-auth",
             str(seed.imp.tls_port), "--server-auth", str(seed.imp.client_tls_port),
             home=imp2)  # fmt: skip
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
             "--port", str(seed.ocs.tls_port), "--fqdn", seed.ocs.fqdn, home=imp2)  # fmt: skip
    intrafed("config", "hosts", "add", seed.ocs.fqdn, seed.ocs.ip, home=imp2)
    intrafed("config", "peer-subject", "add", seed.ocs.fqdn, home=imp2)
    password = tmp / "carol.password"
    password.write_text(f"{CAROL_PASSWORD}\n")
    intrafed("config", "user", "add", CAROL, "--password-file", str(password), home=imp2)
    intrafed("pki", "import", "--store", "trusted", str(seed.ca_certificate), home=imp2)
    reissue(imp2, "imp", seed.ca_dir)
    promote(imp2)
    return Checked(seed.ocs.home, (seed.imp.home, imp2))


@mistake("hostauth.outbound-only")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """Both entries Outbound Only (one alone leaves the other trusting IM&P: a warning)."""
    ocs = seed.ocs.home
    replace_hostauth(seed, "--outbound-only")
    intrafed("config", "hostauth", "remove", "--fqdn", seed.imp.fqdn, home=ocs)
    intrafed("config", "hostauth", "add", "--fqdn", seed.imp.fqdn, "--outbound-only", home=ocs)


@mistake("hostauth.treat-as-authenticated")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """The FQDN entry, which IM&P's MTLS requests match first, challenges them."""
    ocs = seed.ocs.home
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=ocs)
    intrafed("config", "hostauth", "remove", "--fqdn", seed.imp.fqdn, home=ocs)
    intrafed("config", "hostauth", "add", "--fqdn", seed.imp.fqdn, "--no-treat-as-authenticated",
             home=ocs)  # fmt: skip
    intrafed("config", "hostauth", "add", "--ip", seed.imp.ip, home=ocs)


@mistake("hostauth.throttle-as-server")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_hostauth(seed, "--no-throttle-as-server")


@mistake("trust.peer-subject")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    intrafed("config", "peer-subject", "remove", seed.ocs.fqdn, home=seed.imp.home)
    return Checked(seed.imp.home, (seed.ocs.home,))


@mistake("trust.acl")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    """OCS routes to IM&P over TCP by IP; IM&P has no ACL entry for it."""
    ocs = seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TCP",
             "--port", str(seed.imp.tcp_port), "--ip", seed.imp.ip, home=ocs)  # fmt: skip
    return Checked(seed.imp.home, (ocs,))


@mistake("cert.none")
def _(seed: SeedDeployment, tmp: Path) -> None:
    (seed.ocs.home / "pki" / "selected").unlink()


@mistake("cert.private-key")
def _(seed: SeedDeployment, tmp: Path) -> None:
    [key] = (seed.ocs.home / "pki" / "personal").glob("*.key")
    key.unlink()


@mistake("cert.expired")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    return Checked(seed.ocs.home, (seed.imp.home,), later)


@mistake("cert.expiring")
def _(seed: SeedDeployment, tmp: Path) -> None:
    reissue(seed.ocs.home, "ocs", seed.ca_dir, "--days", "10")


@mistake("cert.eku")
def _(seed: SeedDeployment, tmp: Path) -> None:
    force_select(seed.ocs.home, reissue(seed.ocs.home, "ocs", seed.ca_dir, "--server-only",
                                        select=False))  # fmt: skip


@mistake("cert.name")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """OCS given the certificate requested on the IM&P node."""
    imp = seed.imp.home
    intrafed("pki", "csr", "--role", "imp", "--key-type", "ec-p256", "--replace", home=imp)
    requests = imp / "pki" / "requests"
    [request], [key] = requests.glob("*.csr"), requests.glob("*.key")
    signed = tmp / "imp1-for-ocs.pem"
    intrafed("pki", "sign", "--ca", str(seed.ca_dir), "--csr", str(request), "--out", str(signed))
    import_and_force_select(seed.ocs.home, signed, key)
    for leftover in requests.iterdir():
        leftover.unlink()


@mistake("cert.key")
def _(seed: SeedDeployment, tmp: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    identity = NodeIdentity(Role.OCS, seed.ocs.fqdn, seed.ocs.ip)
    csr = make_csr(identity, ["example.com"], weak)
    signed, key = tmp / "weak.pem", tmp / "weak.key"
    signed.write_bytes(certificates_pem([CertificateAuthority.load(seed.ca_dir).sign(csr)]))
    key.write_bytes(private_key_pem(weak))
    import_and_force_select(seed.ocs.home, signed, key)


def import_and_force_select(home: Path, certificate: Path, key: Path) -> None:
    intrafed("pki", "import", "--store", "personal", str(certificate), "--key", str(key),
             home=home)  # fmt: skip
    listing = json.loads(intrafed("pki", "list", "--json", home=home))
    [new] = [c for c in listing["certificates"] if c["store"] == "personal" and not c["selected"]]
    force_select(home, new["thumbprint"])


@mistake("cert.chain")
def _(seed: SeedDeployment, tmp: Path) -> None:
    listing = json.loads(intrafed("pki", "list", "--json", home=seed.ocs.home))
    [root] = [c for c in listing["certificates"] if c["store"] == "trusted"]
    intrafed("pki", "remove", "--store", "trusted", root["thumbprint"], home=seed.ocs.home)


@mistake("cert.peer-untrusted")
def _(seed: SeedDeployment, tmp: Path) -> None:
    ca = other_ca(tmp)
    intrafed("pki", "import", "--store", "trusted", str(ca / "ca.pem"), home=seed.ocs.home)
    reissue(seed.ocs.home, "ocs", ca)


@mistake("tls.fips")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "fips", "off", home=seed.ocs.home)


@mistake("tls.fips-tls12")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """Not a mistake: the seed's FIPS policy, noted for what it leaves out (TLS 1.3)."""


@mistake("tls.legacy-fips")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "tls-profile", "legacy-tls1", home=seed.ocs.home)


@mistake("tls.legacy-profile")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "fips", "off", home=seed.ocs.home)
    intrafed("config", "tls-profile", "legacy-tls1", home=seed.ocs.home)


@mistake("user.both-sides")
def _(seed: SeedDeployment, tmp: Path) -> None:
    password = tmp / "password"
    password.write_text("another secret\n")
    intrafed("config", "user", "add", "bob@example.com", "--password-file", str(password),
             home=seed.imp.home)  # fmt: skip


@mistake("user.neither-side")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    """bob was deleted on OCS and never added on IM and Presence; alice still blocks him."""
    intrafed("config", "user", "block", "alice@example.com", "bob@example.com",
             home=seed.imp.home)  # fmt: skip
    intrafed("config", "user", "remove", "bob@example.com", home=seed.ocs.home)
    return Checked(seed.imp.home, (seed.ocs.home,))


@mistake("routing.advanced")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)
    return Checked(seed.imp.home, (seed.ocs.home,))


@mistake("routing.directory-missing")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    """The directory lists carol (not an OCS user) instead of bob."""
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)
    intrafed("config", "directory", "add", "carol@example.com", home=seed.imp.home)
    return Checked(seed.imp.home, (seed.ocs.home,))


@mistake("routing.directory-stale")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)
    intrafed("config", "directory", "add", "bob@example.com", "carol@example.com",
             home=seed.imp.home)  # fmt: skip
    return Checked(seed.imp.home, (seed.ocs.home,))


@mistake("restart.pending")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """Staged differs from running (the check sees the node run: see ``make``)."""
    intrafed("config", "hosts", "add", "extra.example.com", OTHER_IP, home=seed.ocs.home)
