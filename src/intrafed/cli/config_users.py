"""``intrafed config user|directory``: the users homed here, and IM&P's directory of the
OCS side's users (advanced routing mode)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from intrafed.cli.common import fail, home_option, json_option, load_staged
from intrafed.cli.config_staging import TABLE_JSON, Table, emit, stage, staged_note, utf8, yes
from intrafed.config import edits
from intrafed.config.model import ConfigError, NodeConfig, Role
from intrafed.config.user_csv import UserImport, apply_users, read_users, write_users
from intrafed.store import open_store


def users_table(config: NodeConfig) -> Table:
    """The homed users, without their credentials."""
    rows = [(u.aor, yes(u.enabled), yes(u.ha1_sha256 is not None)) for u in config.users]
    return ("USER", "ENABLED", "PASSWORD SET"), rows


def _user_entries(config: NodeConfig) -> list[dict[str, Any]]:
    return [
        {"aor": u.aor, "enabled": u.enabled, "password_set": u.ha1_sha256 is not None}
        for u in config.users
    ]


@click.group("user")
def user_group() -> None:
    """Users homed here (digest credentials kept as HA1 hashes only)."""


@user_group.command("add")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.option(
    "--password-file",
    type=click.File("rb"),
    required=True,
    help="A file whose first line is the password (- for standard input).",
)
def user_add(home: Path, aor: str, password_file: IO[bytes]) -> None:
    """Home USER@DOMAIN here, enabled."""
    password = _password(password_file)
    stage(home, lambda c: edits.add_user(c, aor, password), f"added user {aor}")


def _password(source: IO[bytes]) -> str:
    """The first line of --password-file."""
    lines = utf8(source, "--password-file").splitlines()
    return lines[0] if lines else ""


@user_group.command("set")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.option(
    "--password-file",
    type=click.File("rb"),
    required=True,
    help="A file whose first line is the new password (- for standard input).",
)
def user_set(home: Path, aor: str, password_file: IO[bytes]) -> None:
    """Give USER@DOMAIN a new password (enabled or not, it stays as it is)."""
    password = _password(password_file)
    stage(home, lambda c: edits.set_user_password(c, aor, password), f"changed user {aor}")


@user_group.command("remove")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def user_remove(home: Path, aor: str) -> None:
    """Delete USER@DOMAIN (the seed: delete, not just disable, a user who moves)."""
    stage(home, lambda c: edits.remove_user(c, aor), f"removed user {aor}")


@user_group.command("enable")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def user_enable(home: Path, aor: str) -> None:
    """Let USER@DOMAIN register again."""
    stage(home, lambda c: edits.set_user_enabled(c, aor, True), f"enabled user {aor}")


@user_group.command("disable")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def user_disable(home: Path, aor: str) -> None:
    """Refuse USER@DOMAIN's registrations; the user stays homed here."""
    stage(home, lambda c: edits.set_user_enabled(c, aor, False), f"disabled user {aor}")


@user_group.command("block")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.argument("watcher", metavar="WATCHER@DOMAIN")
def user_block(home: Path, aor: str, watcher: str) -> None:
    """Block WATCHER politely: its subscriptions to USER@DOMAIN are accepted and show Offline."""
    stage(home, lambda c: edits.block_watcher(c, aor, watcher), f"{aor} blocks {watcher}")


@user_group.command("unblock")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.argument("watcher", metavar="WATCHER@DOMAIN")
def user_unblock(home: Path, aor: str, watcher: str) -> None:
    """Let WATCHER see USER@DOMAIN's presence again."""
    stage(home, lambda c: edits.unblock_watcher(c, aor, watcher), f"{aor} unblocks {watcher}")


@user_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def user_list(home: Path, as_json: bool) -> None:
    """List the homed users."""
    config = load_staged(home)
    emit(as_json, _user_entries(config), *users_table(config))


@user_group.command("import")
@home_option()
@click.argument("source", metavar="FILE.csv", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check the file and print the summary only.")
@json_option()
def user_import(home: Path, source: IO[bytes], dry_run: bool, as_json: bool) -> None:
    """Add or change the users of FILE.csv (- for standard input): all lines, or none.

    \b
    A header line names the columns, in any order:
      address     USER@DOMAIN (required)
      enabled     yes or no (empty: yes)
      password    the password, or instead the HA1s of the realm (the address's domain):
      ha1_md5     MD5(user:realm:password), 32 hex digits
      ha1_sha256  SHA-256(user:realm:password), 64 hex digits
    A configured user's line without credentials keeps them. When any line is refused
    (each is listed with its line number and reason), nothing is applied.
    intrafed config user export --csv writes the format (an empty home: the template).
    """
    text = utf8(source, "FILE.csv")
    found: list[UserImport] = []

    def edit(config: NodeConfig, progress: Callable[[int], None]) -> NodeConfig:
        found.append(read_users(text, config, progress))
        if found[0].refused:
            raise ConfigError(
                "FILE.csv",
                f"{len(found[0].refused)} line(s) refused; nothing was applied",
                "fix them and import again",
            )
        return apply_users(config, found[0])

    with open_store(home) as store, _progress(text.count("\n")) as progress:
        try:
            if dry_run:
                edit(store.load("staged"), progress)
                note = "dry run: nothing was applied"
            else:
                store.stage(lambda config: edit(config, progress))
                note = staged_note(store, home)
        except ConfigError as exc:
            if not found or not found[0].refused:
                raise
            note = str(exc)
    result = found[0]
    _import_summary(result, note, as_json)
    if result.refused:
        sys.exit(2)


@contextmanager
def _progress(lines: int) -> Iterator[Callable[[int], None]]:
    """Tells a progress bar on standard error the line reached, for large files on a TTY."""
    if lines < 10_000 or not sys.stderr.isatty():
        yield lambda line: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("checking users", total=lines)

        def advance(line: int) -> None:
            if line % 1000 == 0:
                bar.update(task, completed=line)

        yield advance


def _import_summary(result: UserImport, note: str, as_json: bool) -> None:
    refused = [{"line": r.line, "reason": r.reason} for r in result.refused]
    counts = {"added": len(result.added), "changed": len(result.changed)}
    if as_json:
        click.echo(json.dumps({"ok": not refused, **counts, "refused": refused, "note": note}))
        return
    for refusal in result.refused:
        click.echo(f"line {refusal.line}: {refusal.reason}", err=bool(refused))
    click.echo(
        f"added {counts['added']}, changed {counts['changed']}, unchanged {result.unchanged}, "
        f"refused {len(refused)} ({note})"
    )


@user_group.command("export")
@home_option()
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the format of import).")
def user_export(home: Path, as_csv: bool) -> None:
    """Write the users as CSV with their HA1s (never a password): what import reads."""
    if not as_csv:
        fail("give --csv (the users file format; intrafed config export has the rest)")
    for line in write_users(load_staged(home).users):
        click.echo(line, nl=False)


@click.group("directory")
def directory_group() -> None:
    """IM&P: the OCS side's users; advanced routing mode forwards only them."""


@directory_group.command("add")
@home_option()
@click.argument("aors", metavar="USER@DOMAIN...", nargs=-1, required=True)
def directory_add(home: Path, aors: tuple[str, ...]) -> None:
    """List OCS users USER@DOMAIN... in the directory."""
    stage(
        home,
        lambda c: edits.add_directory_users(c, aors),
        f"added {', '.join(aors)} to the directory",
    )


@directory_group.command("remove")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def directory_remove(home: Path, aor: str) -> None:
    """Take USER@DOMAIN off the directory (it is no longer forwarded in advanced mode)."""
    stage(home, lambda c: edits.remove_directory_user(c, aor), f"removed {aor} from the directory")


@directory_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def directory_list(home: Path, as_json: bool) -> None:
    """List the directory of the OCS side's users."""
    config = load_staged(home)
    config.require_role("directory", Role.IMP)
    users = config.peer_directory
    emit(as_json, list(users), ("USER",), [(aor,) for aor in users])


@directory_group.command("import")
@home_option()
@click.argument("source", metavar="FILE", type=click.File("rb"), required=False)
@click.option(
    "--from-home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take the users of this OCS node's home instead of FILE.",
)
def directory_import(home: Path, source: IO[bytes] | None, from_home: Path | None) -> None:
    """Replace the directory with the users of FILE or of an OCS node's home.

    FILE (- for standard input) holds one USER@DOMAIN per line, # starts a comment; the
    JSON of intrafed config user list --json (run on the OCS side) is accepted as well.
    """
    if source is not None and from_home is None:
        aors = _directory_file(utf8(source, "FILE"))
    elif from_home is not None and source is None:
        aors = _ocs_users(from_home)
    else:
        raise ConfigError(
            "directory", "name one source", "give either FILE or --from-home OCS_HOME"
        )
    stage(home, lambda c: edits.replace_directory(c, aors), f"directory: {len(aors)} user(s)")


def _directory_file(text: str) -> list[str]:
    """The addresses of a directory file: a JSON list (of addresses, or of user entries
    with ``aor``), or one address per line with ``#`` comments."""
    if text.lstrip().startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("FILE", f"is not a JSON list ({exc})", "fix the JSON") from None
        aors = [entry.get("aor") if isinstance(entry, dict) else entry for entry in entries]
        strings = [aor for aor in aors if isinstance(aor, str)]
        if len(strings) != len(aors):
            raise ConfigError(
                "FILE", "a JSON entry has no address", "give USER@DOMAIN strings or aor entries"
            )
        return strings
    lines = (line.partition("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _ocs_users(home: Path) -> list[str]:
    """The users homed on the OCS node at ``home``."""
    config = load_staged(home)
    if config.role is not Role.OCS:
        raise ConfigError(
            "--from-home",
            f"{home} is an {config.role.value} node; the directory lists the OCS side's users",
            "give an OCS node's home",
        )
    return [user.aor for user in config.users]
