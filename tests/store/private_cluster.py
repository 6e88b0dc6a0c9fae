"""A PostgreSQL server of a test's own (initdb in a temporary directory, run as the
postgres OS user): a test may stop it, start it or freeze it without touching the cluster
other tests share."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.store.postgres import Cluster

TRUST = "--auth=trust"


def _postgres(*command: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=True,
        capture_output=True,
        timeout=60,
    )


class PrivateServer:
    """One postmaster at ``ip``:``port`` over a directory of its own (under /tmp: the
    postgres user cannot enter pytest's); its database ``postgres`` lets the postgres role
    in without a password (``url``)."""

    def __init__(self, ip: str, port: int) -> None:
        self.ip, self.port = ip, port
        version = Cluster.installed().version  # the fixture's checks: installed, as root
        self._bin = Path(f"/usr/lib/postgresql/{version}/bin")
        self.directory = Path(tempfile.mkdtemp(prefix="intrafed-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        _postgres(str(self._bin / "initdb"), "-D", str(self.directory / "data"), TRUST, "-N")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.ip}:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses={self.ip} -c fsync=off"
        pg_ctl = str(self._bin / "pg_ctl")
        log = str(self.directory / "server.log")
        _postgres(
            pg_ctl, "-D", str(self.directory / "data"), "-o", options, "-l", log, "-w", "start"
        )

    def stop(self) -> None:
        pg_ctl = str(self._bin / "pg_ctl")
        _postgres(pg_ctl, "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def _processes(self) -> list[int]:
        """The postmaster and every process it started."""
        postmaster = int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every process of the server stopped (SIGSTOP): it accepts TCP connections and
        answers nothing, as a hung host does; continued at the end."""
        processes = self._processes()
        for pid in processes:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def private_server(ip: str, port: int) -> Iterator[PrivateServer]:
    """A started ``PrivateServer``, stopped and removed at the end whatever state the test
    left it in."""
    server = PrivateServer(ip, port)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
