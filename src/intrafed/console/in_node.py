"""The console inside a running node, opt-in: ``HOME/console.toml`` (written by ``intrafed
admin enable``) says where it listens, and ``intrafed serve`` runs it beside the node in a
thread of its own, started after the node's listeners and stopped before them."""

from __future__ import annotations

import logging
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from intrafed.config.model import ConfigError
from intrafed.console.listen import Listen

SETTING_FILE = "console.toml"
STOP_TIMEOUT = 5.0
"""Seconds the node waits for its console to stop."""
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InNodeConsole:
    """Where the node's own console listens, and whether over TLS."""

    listen: Listen
    tls: bool = False


def enable(home: Path, console: InNodeConsole) -> Path:
    """Make the node of ``home`` serve its console (from its next start)."""
    path = home / SETTING_FILE
    listen = f"[{console.listen.ip}]" if ":" in console.listen.ip else console.listen.ip
    document = {"listen": f"{listen}:{console.listen.port}", "tls": console.tls}
    path.write_text(tomli_w.dumps(document))
    return path


def disable(home: Path) -> bool:
    """Stop serving the console from the node's next start; False when it was not on."""
    path = home / SETTING_FILE
    if not path.exists():
        return False
    path.unlink()
    return True


def configured(home: Path) -> InNodeConsole | None:
    """The node's console setting; None when off. ``ConfigError`` when the file is damaged."""
    path = home / SETTING_FILE
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            str(path), f"is not valid TOML ({exc})", "run intrafed admin enable again"
        ) from None
    listen, tls = document.get("listen"), document.get("tls", False)
    if not isinstance(listen, str) or not isinstance(tls, bool):
        raise ConfigError(
            str(path),
            'needs listen = "IP:PORT" and tls = true|false',
            "run intrafed admin enable again",
        )
    return InNodeConsole(Listen.parse(listen), tls)


class ConsoleBesideNode:
    """The console of a running node, served from a thread of the node's process."""

    def __init__(self, home: Path, console: InNodeConsole) -> None:
        """Bind the console's address (``ConfigError`` when it cannot run) and start it."""
        from intrafed.console.app import ConsoleSettings  # the web stack only when on
        from intrafed.console.server import prepare

        settings = ConsoleSettings(home, secure=console.tls, in_node=True)
        self._server, self._listener = prepare(settings, console.listen)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._listener]},
            name="intrafed-console",
            daemon=True,
        )
        self._thread.start()
        scheme = "https" if console.tls else "http"
        _log.info("web console on %s://%s:%s/", scheme, console.listen.ip, console.listen.port)

    @classmethod
    def start(cls, home: Path) -> ConsoleBesideNode | None:
        """The console ``HOME/console.toml`` asks for, running; None when it is off or
        cannot run (logged: the node runs on without it)."""
        try:
            console = configured(home)
            return cls(home, console) if console is not None else None
        except ConfigError as exc:
            _log.warning("web console not started: %s", exc)
            return None

    def stop(self) -> None:
        """Stop serving (requests in flight get a moment to finish)."""
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT)
        self._listener.close()
