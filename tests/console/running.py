"""The console run as an administrator runs it (``intrafed admin`` in its own process), and
an HTTP client over a real socket from a chosen loopback address."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.homes import intrafed_process as intrafed
from tests.integration.peers import free_port

CONSOLE_IP = "127.0.18.1"
PASSWORD = "correct horse battery"
START_TIMEOUT = 20.0


def set_password(home: Path, password: str = PASSWORD) -> None:
    """``intrafed admin password`` with the password on stdin."""
    result = intrafed("admin", "password", "--home", str(home), stdin=password + "\n")
    assert result.returncode == 0, result.stderr


@dataclass(frozen=True, slots=True)
class RunningConsole:
    """A console process and where it answers."""

    url: str
    host: str
    port: int
    tls: bool
    log: Path
    """What the console wrote on stdout and stderr."""


@contextlib.contextmanager
def console(home: Path, *extra: str, tls: bool = False) -> Iterator[RunningConsole]:
    """``intrafed admin --home HOME`` on a free port of ``CONSOLE_IP`` until the block ends."""
    port = free_port(CONSOLE_IP)
    arguments = ["admin", "--home", str(home), "--listen", f"{CONSOLE_IP}:{port}", *extra]
    if tls:
        arguments.append("--tls")
    log = home.parent / f"console-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "intrafed", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with socket.socket() as probe:
                if probe.connect_ex((CONSOLE_IP, port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"the console did not start: {log.read_text()}")
            time.sleep(0.05)
        scheme = "https" if tls else "http"
        yield RunningConsole(f"{scheme}://{CONSOLE_IP}:{port}", CONSOLE_IP, port, tls, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: str

    def header(self, name: str) -> str:
        """One header's value ('' when absent)."""
        return self.headers.get(name, "")


@dataclass(slots=True)
class Client:
    """A browser-like client of one console: keeps the session cookie, follows nothing."""

    target: RunningConsole
    source: str = "127.0.18.10"
    ca_file: Path | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def _connection(self) -> http.client.HTTPConnection:
        source = (self.source, 0)
        if self.target.tls:
            context = ssl.create_default_context(cafile=self.ca_file)
            context.check_hostname = False
            return http.client.HTTPSConnection(
                self.target.host, self.target.port, source_address=source, context=context
            )
        return http.client.HTTPConnection(self.target.host, self.target.port, source_address=source)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request; the cookies it sets are kept."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers, response.read().decode())
        finally:
            connection.close()
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return answer

    def csrf(self, path: str) -> str:
        """The CSRF token of the forms on ``path``."""
        answer = self.request("GET", path)
        found = re.search(r'name="csrf" value="([^"]+)"', answer.body)
        assert found, answer.body
        return found.group(1)

    def log_in(self, password: str = PASSWORD) -> Answer:
        """Submit the login form."""
        return self.request("POST", "/login", {"csrf": self.csrf("/login"), "password": password})
