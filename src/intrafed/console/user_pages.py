"""The Users and Hosts tabs of both roles."""

from __future__ import annotations

from pathlib import Path

from intrafed.config import edits
from intrafed.config.model import HostEntry, NodeConfig
from intrafed.console.forms import (
    ConfigPage,
    Field,
    Form,
    FormValues,
    Row,
    RowButton,
    remove_button,
    remove_form,
    staged,
)

# Hosts (both roles): static name resolution, used before DNS.


def hosts_page() -> ConfigPage:
    """Static host entries (``config hosts``)."""
    fields = (
        Field("fqdn", "FQDN", settings=("--fqdn", "FQDN", "hosts")),
        Field("address", "IP address", settings=("ADDR", "ADDRESS")),
    )

    def rows(home: Path, config: NodeConfig) -> list[Row]:
        return [
            Row((e.fqdn, e.ip), remove_button({"fqdn": e.fqdn, "address": e.ip}))
            for e in config.hosts
        ]

    def entry(values: FormValues) -> HostEntry:
        return HostEntry(values.required("fqdn", "FQDN"), values.required("address", "ADDRESS"))

    return ConfigPage(
        "hosts",
        "Hosts",
        "Static name resolution: the next hops' FQDNs resolve here before DNS (the seed's lab "
        "has none).",
        ("FQDN", "ADDRESS"),
        rows,
        (
            Form(
                "add",
                "Add a host",
                "Add",
                fields,
                staged(lambda c, v: edits.add_host(c, entry(v)), "added host {fqdn} {address}"),
            ),
            Form(
                "set",
                "Change a host's address",
                "Change",
                fields,
                staged(lambda c, v: edits.set_host(c, entry(v)), "changed host {fqdn} {address}"),
            ),
        ),
        (
            remove_form(
                fields,
                staged(
                    lambda c, v: edits.remove_host(
                        c, v.required("fqdn", "FQDN"), v.text("address")
                    ),
                    "removed host {fqdn}",
                ),
            ),
        ),
    )


# Users (both roles): never a password or an HA1 shown.


def users_page() -> ConfigPage:
    """Users, their state and block lists (``config user``)."""

    def rows(home: Path, config: NodeConfig) -> list[Row]:
        return [
            Row(
                (u.aor, "enabled" if u.enabled else "disabled", ", ".join(u.blocked)),
                (
                    RowButton("enable", "Disable" if u.enabled else "Enable", {"aor": u.aor}),
                    RowButton("remove", "Remove", {"aor": u.aor}),
                    *(
                        RowButton("unblock", f"Unblock {w}", {"aor": u.aor, "watcher": w})
                        for w in u.blocked
                    ),
                ),
            )
            for u in config.users
        ]

    def toggle(config: NodeConfig, values: FormValues) -> NodeConfig:
        aor = values.required("aor", "USER@DOMAIN")
        user = next((u for u in config.users if u.aor == aor.lower()), None)
        return edits.set_user_enabled(config, aor, not (user is not None and user.enabled))

    aor = Field("aor", "User (user@domain)", settings=("USER@DOMAIN", "user"))
    watcher = Field("watcher", "Watcher (user@domain)", settings=("WATCHER",))
    return ConfigPage(
        "users",
        "Users",
        "Users homed on this side. Passwords are kept only as digest HA1s, never shown.",
        ("USER", "STATE", "BLOCKED WATCHERS"),
        rows,
        (
            Form(
                "add",
                "Add a user",
                "Add",
                (aor, Field("password", "Password", "password", settings=("--password-file",))),
                staged(
                    lambda c, v: edits.add_user(
                        c, v.required("aor", "USER@DOMAIN"), v.secret("password")
                    ),
                    "added user {aor}",
                ),
            ),
            Form(
                "block",
                "Block a watcher from a user's presence",
                "Block",
                (aor, watcher),
                staged(
                    lambda c, v: edits.block_watcher(
                        c, v.required("aor", "USER@DOMAIN"), v.required("watcher", "WATCHER")
                    ),
                    "{aor} blocks {watcher}",
                ),
            ),
        ),
        (
            Form("enable", "Enable", "Enable", (aor,), staged(toggle, "changed user {aor}")),
            Form(
                "unblock",
                "Unblock",
                "Unblock",
                (aor, watcher),
                staged(
                    lambda c, v: edits.unblock_watcher(
                        c, v.required("aor", "USER@DOMAIN"), v.required("watcher", "WATCHER")
                    ),
                    "{aor} no longer blocks {watcher}",
                ),
            ),
            remove_form(
                (aor,),
                staged(
                    lambda c, v: edits.remove_user(c, v.required("aor", "USER@DOMAIN")),
                    "removed user {aor}",
                ),
            ),
        ),
    )
