"""Serving the console: the application's routes, and uvicorn on a loopback address by
default, over TLS with the node's selected certificate when asked."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from intrafed.config.model import ConfigError
from intrafed.console import live_pages
from intrafed.console.app import (
    HERE,
    Console,
    ConsoleSettings,
    config_page,
    guarded,
    home_page,
    login,
    logout,
)
from intrafed.console.listen import Listen
from intrafed.console.password import stored_hash
from intrafed.pki import CertificateStores
from intrafed.store import load_staged

GRACEFUL_STOP = 2
"""Seconds a stopping console gives the requests in flight."""
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"
"""Forward-secret AEAD suites only (TLS 1.3 suites are always on)."""


def create_app(settings: ConsoleSettings, host_names: Sequence[str] = ("*",)) -> Starlette:
    """The console for the node at ``settings.home``, answering requests for
    ``host_names`` only."""
    pages = [
        ("/", home_page, ["GET"]),
        ("/logout", logout, ["POST"]),
        ("/config/{slug}", config_page, ["GET", "POST"]),
        *live_pages.ROUTES,
    ]
    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        *(Route(path, guarded(page), methods=methods) for path, page, methods in pages),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=host_names)]
    )
    app.state.console = Console(settings)
    return app


def tls_files(home: Path) -> tuple[Path, Path]:
    """The node's selected certificate (with its chain) and its private key."""
    stored = CertificateStores.of_home(home).selected()
    if stored.key_path is None:
        raise ConfigError(
            "--tls",
            f"the selected certificate {stored.thumbprint} has no private key",
            "import it again with its key, or select another (Security page)",
        )
    return stored.path, stored.key_path


def prepare(settings: ConsoleSettings, listen: Listen) -> tuple[uvicorn.Server, socket.socket]:
    """The console's server and its bound socket; ``ConfigError`` when no password was
    set, the TLS certificate is unusable or the address is taken."""
    if stored_hash(settings.home) is None:
        raise ConfigError(
            "password",
            "the console has no admin password yet",
            f"set one: intrafed admin password --home {settings.home}",
        )
    certificate = key = None
    if settings.secure:
        certificate, key = tls_files(settings.home)
    identity = load_staged(settings.home).identity
    names = [identity.fqdn, *([identity.pool_fqdn] if identity.pool_fqdn else [])]
    config = uvicorn.Config(
        create_app(settings, listen.host_names(names)),
        log_level="warning",
        log_config=None,  # intrafed's logging, set up by the command
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        ssl_certfile=certificate,
        ssl_keyfile=key,
        ssl_ciphers=TLS_CIPHERS,
        timeout_graceful_shutdown=GRACEFUL_STOP,
    )
    try:
        listener = socket.create_server((listen.ip, listen.port), family=listen.family)
    except OSError as exc:
        raise ConfigError(
            "--listen",
            f"cannot listen on {listen.ip} port {listen.port}: {exc.strerror or exc}",
            "stop what listens there, or give another --listen IP:PORT",
        ) from None
    return uvicorn.Server(config), listener


def serve(settings: ConsoleSettings, listen: Listen, ready: Callable[[], None]) -> None:
    """Run the console in the foreground until interrupted, calling ``ready`` once it
    listens."""
    server, listener = prepare(settings, listen)
    with listener:
        ready()
        server.run(sockets=[listener])
