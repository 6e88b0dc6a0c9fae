"""``intrafed config hostauth|acl|peer-subject``: the peers trusted as servers (OCS Host
Authorization; IM&P incoming ACL and TLS peer subjects)."""

from __future__ import annotations

from pathlib import Path

import click

from intrafed.cli.common import home_option, json_option, load_staged
from intrafed.cli.config_staging import (
    TABLE_JSON,
    F,
    Table,
    emit,
    host_options,
    one_host,
    stage,
    yes,
)
from intrafed.config import edits
from intrafed.config.document import as_table
from intrafed.config.model import AclEntry, ConfigError, HostAuthorization, NodeConfig, Role


def host_authorizations_table(config: NodeConfig) -> Table:
    """OCS: the Host Authorization tab."""
    headers = ("HOST", "OUTBOUND ONLY", "THROTTLE AS SERVER", "TREAT AS AUTHENTICATED")
    rows = [
        (
            h.host,
            yes(h.outbound_only),
            yes(h.throttle_as_server),
            yes(h.treat_as_authenticated),
        )
        for h in config.host_authorizations
    ]
    return headers, rows


def acl_table(config: NodeConfig) -> Table:
    """IM&P: the incoming ACL."""
    return ("HOST",), [(entry.host,) for entry in config.acl]


@click.group("hostauth")
def hostauth_group() -> None:
    """OCS: Host Authorization, peers whose requests are trusted as a server's."""


@hostauth_group.command("add")
@home_option()
@host_options
@click.option(
    "--outbound-only/--no-outbound-only",
    default=False,
    help="Only we open connections to it; its own connections get no trust.",
)
@click.option(
    "--throttle-as-server/--no-throttle-as-server",
    default=True,
    help="Server rate limits instead of a client's.",
)
@click.option(
    "--treat-as-authenticated/--no-treat-as-authenticated",
    default=True,
    help="Never challenge its requests; trust their From identities.",
)
def hostauth_add(
    home: Path,
    fqdn: str | None,
    ip: str | None,
    outbound_only: bool,
    throttle_as_server: bool,
    treat_as_authenticated: bool,
) -> None:
    """Authorize a host (TLS peers need two entries: --fqdn and --ip)."""
    entry = HostAuthorization(fqdn, ip, outbound_only, throttle_as_server, treat_as_authenticated)
    stage(
        home,
        lambda c: edits.add_host_authorization(c, entry),
        f"added host authorization {entry.host}",
    )


def _new_host_options(function: F) -> F:
    function = click.option("--new-ip", help="Name this address instead.")(function)
    return click.option("--new-fqdn", help="Name this FQDN instead.")(function)


def _renamed(host: str, new_fqdn: str | None, new_ip: str | None) -> str:
    new = new_fqdn or new_ip
    return host.lower() if new is None else f"{host.lower()} (now {new.lower()})"


@hostauth_group.command("set")
@home_option()
@host_options
@_new_host_options
@click.option(
    "--outbound-only/--no-outbound-only",
    default=None,
    help="Only we open connections to it; its own connections get no trust.",
)
@click.option(
    "--throttle-as-server/--no-throttle-as-server",
    default=None,
    help="Server rate limits instead of a client's.",
)
@click.option(
    "--treat-as-authenticated/--no-treat-as-authenticated",
    default=None,
    help="Never challenge its requests; trust their From identities.",
)
def hostauth_set(
    home: Path,
    fqdn: str | None,
    ip: str | None,
    new_fqdn: str | None,
    new_ip: str | None,
    outbound_only: bool | None,
    throttle_as_server: bool | None,
    treat_as_authenticated: bool | None,
) -> None:
    """Change the entry for a host in place: the flags given, or the host it names."""
    host = one_host(fqdn, ip)
    stage(
        home,
        lambda c: edits.set_host_authorization(
            c,
            host,
            fqdn=new_fqdn,
            ip=new_ip,
            outbound_only=outbound_only,
            throttle_as_server=throttle_as_server,
            treat_as_authenticated=treat_as_authenticated,
        ),
        f"changed host authorization {_renamed(host, new_fqdn, new_ip)}",
    )


@hostauth_group.command("remove")
@home_option()
@host_options
def hostauth_remove(home: Path, fqdn: str | None, ip: str | None) -> None:
    """Remove the entry for a host."""
    host = one_host(fqdn, ip)
    stage(
        home,
        lambda c: edits.remove_host_authorization(c, host),
        f"removed host authorization {host}",
    )


@hostauth_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def hostauth_list(home: Path, as_json: bool) -> None:
    """List the authorized hosts."""
    config = load_staged(home)
    config.require_role("hostauth", Role.OCS)
    entries = [as_table(h) for h in config.host_authorizations]
    emit(as_json, entries, *host_authorizations_table(config))


@click.group("peer-subject")
def peer_subject_group() -> None:
    """IM&P: TLS peer subjects accepted on the Peer Auth listener."""


@peer_subject_group.command("add")
@home_option()
@click.argument("name")
def peer_subject_add(home: Path, name: str) -> None:
    """Accept NAME (the OCS server or pool certificate's subject)."""
    stage(home, lambda c: edits.add_peer_subject(c, name), f"added TLS peer subject {name.lower()}")


@peer_subject_group.command("set")
@home_option()
@click.argument("name")
@click.option("--new-name", required=True, help="The subject to accept instead.")
def peer_subject_set(home: Path, name: str, new_name: str) -> None:
    """Accept the subject --new-name instead of NAME (e.g. after a certificate renewal)."""
    stage(
        home,
        lambda c: edits.set_peer_subject(c, name, new_name),
        f"changed TLS peer subject {name.lower()} to {new_name.lower()}",
    )


@peer_subject_group.command("remove")
@home_option()
@click.argument("name")
def peer_subject_remove(home: Path, name: str) -> None:
    """Stop accepting NAME."""
    stage(
        home,
        lambda c: edits.remove_peer_subject(c, name),
        f"removed TLS peer subject {name.lower()}",
    )


@peer_subject_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def peer_subject_list(home: Path, as_json: bool) -> None:
    """List the TLS peer subjects."""
    config = load_staged(home)
    config.require_role("peer-subject", Role.IMP)
    subjects = config.peer_subjects
    emit(as_json, list(subjects), ("SUBJECT",), [(s,) for s in subjects])


@click.group("acl")
def acl_group() -> None:
    """IM&P: the incoming ACL, hosts whose TCP requests are trusted without digest."""


@acl_group.command("add")
@home_option()
@host_options
def acl_add(home: Path, fqdn: str | None, ip: str | None) -> None:
    """Trust a host (the seed: the OCS server's IP and FQDN)."""
    entry = AclEntry(fqdn, ip)
    stage(home, lambda c: edits.add_acl(c, entry), f"added ACL entry {entry.host}")


@acl_group.command("set")
@home_option()
@host_options
@_new_host_options
def acl_set(
    home: Path, fqdn: str | None, ip: str | None, new_fqdn: str | None, new_ip: str | None
) -> None:
    """Trust the host --new-fqdn or --new-ip instead, in the entry's place."""
    host = one_host(fqdn, ip)
    if new_fqdn is None and new_ip is None:
        raise ConfigError("acl", "nothing to change", "give --new-fqdn or --new-ip")
    entry = AclEntry(new_fqdn, new_ip)
    stage(
        home,
        lambda c: edits.set_acl(c, host, entry),
        f"changed ACL entry {_renamed(host, new_fqdn, new_ip)}",
    )


@acl_group.command("remove")
@home_option()
@host_options
def acl_remove(home: Path, fqdn: str | None, ip: str | None) -> None:
    """Remove the entry for a host."""
    host = one_host(fqdn, ip)
    stage(home, lambda c: edits.remove_acl(c, host), f"removed ACL entry {host}")


@acl_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def acl_list(home: Path, as_json: bool) -> None:
    """List the incoming ACL."""
    config = load_staged(home)
    config.require_role("acl", Role.IMP)
    emit(as_json, [as_table(entry) for entry in config.acl], *acl_table(config))
