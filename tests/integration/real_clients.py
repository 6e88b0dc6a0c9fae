"""Real third-party SIP clients from Debian, run headless as processes for integration
tests: baresip (``baresip-core``), driven through its ``ctrl_tcp`` module, and Linphone's
CLI (``linphone-cli``), driven through its stdin.

Each client runs in its own directory (configuration, HOME, logs) and registers one user
on one node over TCP or TLS; it messages and watches one other user (its only contact).
What it reports (registration, received messages, presence of its contact) is parsed from
its output; every wait is bounded and fails with the tail of the client's output and log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.integration.peers import free_port, wait_listening

BARESIP = shutil.which("baresip")
LINPHONEC = shutil.which("linphonec")
STDBUF = shutil.which("stdbuf")
INSTALL = "sudo apt-get install -y baresip-core linphone-cli"
"""What installs both clients (``./dev test``, which CI runs, does it when root)."""

WAIT = 10.0
"""How long a client may take to show what a test waits for (seconds)."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def missing_clients() -> str | None:
    """Why the clients cannot run here (with the command that installs them), or None."""
    missing = [
        name for name, path in (("baresip", BARESIP), ("linphonec", LINPHONEC)) if path is None
    ]
    if not missing:
        return None
    return f"{', '.join(missing)} not installed; install with: {INSTALL}"


@dataclass(frozen=True)
class Account:
    """Who a client registers as, where, and the one user it messages and watches."""

    aor: str
    """``user@example.com``."""
    password: str
    """The digest password."""
    node: tuple[str, int]
    """The node listener it registers on (and sends everything through)."""
    transport: Literal["tcp", "tls"]
    """How it reaches ``node``."""
    ca_file: Path
    """The CA that signed the node's certificate (TLS)."""
    contact: str
    """The AOR it messages and whose presence it watches."""

    @property
    def user(self) -> str:
        return self.aor.partition("@")[0]

    @property
    def domain(self) -> str:
        return self.aor.partition("@")[2]

    @property
    def proxy(self) -> str:
        """The node as a SIP URI."""
        return f"sip:{self.node[0]}:{self.node[1]};transport={self.transport}"


class RealClient:
    """A running client process: its output parsed into what it reports."""

    name = "client"

    def __init__(self, account: Account, workdir: Path) -> None:
        self.account, self.workdir = account, workdir
        self.output = workdir / "output.txt"
        """A copy of everything it printed."""
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        """Every line of its output, colours removed."""
        self.received_messages: list[tuple[str, str]] = []
        """(sender AOR, text) of every pager MESSAGE it showed, in order."""
        self.presence_seen: list[tuple[str, str]] = []
        """(AOR, state in lower case, as the client words it) of every change it showed."""
        self.registered = False
        self.problem: str | None = None
        """Why it cannot go on, when its output says so."""
        self._partial = ""
        self._reader: asyncio.Task[None] | None = None

    async def start(self, command: list[str]) -> None:
        assert STDBUF is not None, "stdbuf (coreutils) is not installed"
        home = str(self.workdir)
        env = {
            **os.environ,
            "HOME": home,
            "TMPDIR": home,
            "XDG_CONFIG_HOME": home,
            "XDG_DATA_HOME": home,
            "XDG_CACHE_HOME": home,
        }
        # Line-buffered output: what it reports is seen as it happens.
        self.process = await asyncio.create_subprocess_exec(
            STDBUF,
            "-oL",
            "-eL",
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        self._reader = asyncio.create_task(self._read())

    async def stop(self, grace: float = 0) -> None:
        """Let it exit by itself for ``grace`` s, then terminate it (kill it 3 s later)."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 3)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        with self.output.open("wb") as copy:
            while chunk := await self.process.stdout.read(65536):
                copy.write(chunk)
                copy.flush()
                self._received(chunk)

    def _received(self, chunk: bytes) -> None:
        text = self._partial + chunk.decode(errors="replace")
        *complete, self._partial = text.split("\n")
        for line in complete:
            line = _ANSI.sub("", line).replace("\r", "")
            self.lines.append(line)
            self.parse(line)
        self.parse_partial(self._partial)

    def parse(self, line: str) -> None:
        """Note what one line of output reports."""

    def parse_partial(self, text: str) -> None:
        """Note what an unfinished line (a prompt) reports."""

    async def poll(self) -> None:
        """Read what the client reports outside its output (its log, its state)."""

    def tail(self, lines: int = 80) -> str:
        """The end of what it printed, for failure messages."""
        output = "\n".join([*self.lines[-lines:], self._partial])
        return f"--- {self.name} output ({self.output}) ---\n{output}"

    async def until(self, what: str, done: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``done()``; fail after ``timeout`` s, or at once when the client
        exited or reported that it cannot go on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.poll()
            if done():
                return
            reason = None
            if self.problem is not None:
                reason = self.problem
            elif self.process is not None and self.process.returncode is not None:
                reason = f"it exited with status {self.process.returncode}"
            elif loop.time() > deadline:
                reason = f"not within {timeout} s"
            if reason is not None:
                raise AssertionError(
                    f"{self.name} ({self.account.aor} over {self.account.transport} to "
                    f"{self.account.proxy}): {what}: {reason}\n{self.tail()}"
                )
            await asyncio.sleep(0.05)

    async def wait_registered(self, timeout: float = WAIT) -> None:
        """Until the client says its registration succeeded."""
        await self.until("registration", lambda: self.registered, timeout)

    async def wait_message(self, sender: str, text: str, timeout: float = WAIT) -> None:
        """Until the client shows ``text`` from ``sender``."""
        await self.until(
            f"MESSAGE {text!r} from {sender}",
            lambda: (sender, text) in self.received_messages,
            timeout,
        )

    def presence(self, aor: str) -> str | None:
        """The state of ``aor`` the client showed last (lower case), if any."""
        states = [state for who, state in self.presence_seen if who == aor]
        return states[-1] if states else None

    async def wait_presence(self, aor: str, state: str, timeout: float = WAIT) -> None:
        """Until the client shows ``aor`` as ``state`` (its own word, any case)."""
        await self.until(
            f"presence of {aor} {state!r} (seen: {self.presence_seen})",
            lambda: self.presence(aor) == state.lower(),
            timeout,
        )


def _aor(uri: str) -> str:
    """``user@host`` of a SIP URI, with or without brackets and parameters."""
    uri = uri.strip().strip("<>")
    uri = uri.removeprefix("sip:").removeprefix("sips:")
    return re.split(r"[;>?]", uri, maxsplit=1)[0]


class Baresip(RealClient):
    """baresip 1.0: commands through ``ctrl_tcp`` (JSON netstrings), reports on its
    output (``stdio`` and ``menu`` modules; ``-s`` adds a SIP trace for failure messages).

    libre 1.1 cannot answer a digest challenge when any SHA-256 one is present: the node it
    registers on must offer MD5 only."""

    name = "baresip"
    _registration = re.compile(r"^(\S+@\S+): \{\d+/\w+/v\d\} (\d{3}) ")
    _register_failed = re.compile(r"^reg: sip:\S+: (.*)$")
    _message = re.compile(r'^(sips?:\S+): "(.*)"$')
    _contact = re.compile(r"^[\s>]*(\w+)\s.*<(sips?:[^>]+)>")

    def __init__(self, account: Account, workdir: Path, ip: str) -> None:
        super().__init__(account, workdir)
        self.ip = ip
        self.ctrl = (ip, free_port(ip))
        self._ctrl: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._ctrl_lock = asyncio.Lock()

    def configure(self) -> None:
        account = self.account
        (self.workdir / "config").write_text(
            f"poll_method epoll\n"
            f"sip_listen {self.ip}:0\n"
            f"sip_cafile {account.ca_file}\n"
            "audio_player aufile,/dev/null\naudio_source aufile,/dev/null\n"
            "audio_alert aufile,/dev/null\n"
            "module_path /usr/lib/baresip/modules\n"
            "module stdio.so\nmodule g711.so\nmodule aufile.so\n"
            "module_tmp account.so\n"
            "module_app contact.so\nmodule_app menu.so\nmodule_app presence.so\n"
            "module_app ctrl_tcp.so\n"
            f"ctrl_tcp_listen {self.ctrl[0]}:{self.ctrl[1]}\n"
        )
        # pubint: publish its presence (presence_online / presence_offline) to the node.
        (self.workdir / "accounts").write_text(
            f"<sip:{account.aor};transport={account.transport}>;auth_pass={account.password};"
            f'outbound="{account.proxy}";regint=600;pubint=600\n'
        )
        (self.workdir / "contacts").write_text(f"<sip:{account.contact}>;presence=p2p\n")

    async def launch(self) -> None:
        assert BARESIP is not None, missing_clients()
        self.configure()
        await self.start([BARESIP, "-f", str(self.workdir), "-s"])
        try:
            await wait_listening(*self.ctrl)
            self._ctrl = await asyncio.open_connection(*self.ctrl)
        except (OSError, TimeoutError) as error:
            raise AssertionError(f"baresip's ctrl_tcp: {error}\n{self.tail()}") from error

    async def stop(self, grace: float = 0) -> None:
        if self._ctrl is not None:
            self._ctrl[1].close()
        await super().stop(grace)

    def parse(self, line: str) -> None:
        if match := self._registration.match(line):
            if match[2] == "200":
                self.registered = True
            else:
                self.problem = f"registration answered {line}"
        elif match := self._register_failed.match(line):
            self.problem = f"registration failed: {match[1]}"
        elif match := self._message.match(line):
            self.received_messages.append((_aor(match[1]), match[2]))

    async def poll(self) -> None:
        # It prints a contact's change of state, but not the first state it learns:
        # its contact list says what it shows now.
        if self._ctrl is None or self.process is None or self.process.returncode is not None:
            return
        for line in _ANSI.sub("", await self.command("contacts")).splitlines():
            if match := self._contact.match(line):
                aor, state = _aor(match[2]), match[1].lower()
                if self.presence(aor) != state:
                    self.presence_seen.append((aor, state))

    async def command(self, command: str, params: str = "") -> str:
        """Run a ``ctrl_tcp`` command; its response's data."""
        assert self._ctrl is not None
        reader, writer = self._ctrl
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        async with self._ctrl_lock:
            writer.write(b"%d:%s," % (len(body), body))
            while True:
                length = await asyncio.wait_for(reader.readuntil(b":"), WAIT)
                data = await asyncio.wait_for(reader.readexactly(int(length[:-1]) + 1), WAIT)
                reply = json.loads(data[:-1])
                if reply.get("response"):  # events also arrive on this connection
                    break
        if not reply.get("ok"):
            raise AssertionError(f"baresip {command} {params!r}: {reply}\n{self.tail()}")
        return str(reply.get("data", ""))

    async def send_message(self, to: str, text: str) -> None:
        """Send a pager MESSAGE (to its contact: baresip 1.0 messages the current one)."""
        if to != self.account.contact:
            raise ValueError(f"baresip messages only its contact {self.account.contact}")
        await self.command("message", text)

    async def set_presence(self, online: bool) -> None:
        """Publish open or closed (baresip's ``presence_online`` / ``presence_offline``)."""
        await self.command("presence_online" if online else "presence_offline")


class Linphone(RealClient):
    """Linphone 5.1's ``linphonec``: commands on its stdin, reports on its output and in
    its log (``-d 6``). It publishes its presence at registration and watches its friend.

    It opens a new connection to whatever port the node advertises in Via, Record-Route
    and Contact; when that port asks it for a client certificate it stops at a
    "Password for" prompt, reading the next commands as the password."""

    name = "linphonec"
    _message = re.compile(r"Message received from (\S+): (.*)$")
    _friend = re.compile(r'Friend (?:"[^"]*" )?(<?sips?:[^ >]+>?) is (.+)$')
    _registration = re.compile(r"to \[LinphoneRegistration(Ok|Failed)\]")
    _delivery = re.compile(
        r"Chat message \S+ of chat room ConferenceId\(peer=IdentityAddress\((sips?:[^)]+)\).*"
        r"moving from InProgress to (Delivered|NotDelivered)"
    )

    def __init__(self, account: Account, workdir: Path) -> None:
        super().__init__(account, workdir)
        self.log = workdir / "linphone.log"
        self.deliveries: list[tuple[str, str]] = []
        """(recipient AOR, Delivered or NotDelivered) of each MESSAGE it sent."""
        self._log_offset = 0
        self._log_partial = ""

    def configure(self) -> None:
        account = self.account
        tcp, tls = ("-1", "0") if account.transport == "tcp" else ("0", "-1")
        (self.workdir / ".local/share/linphone").mkdir(parents=True)
        (self.workdir / "linphonerc").write_text(
            "[sip]\nsip_port=0\n"
            f"sip_tcp_port={tcp}\nsip_tls_port={tls}\n"
            "default_proxy=0\n"
            f"root_ca={account.ca_file}\n"
            # The node is reached by IP: check the chain, not the name.
            "verify_server_certs=1\nverify_server_cn=0\n"
            # Without this it never creates a transport in a container.
            "[net]\nauto_net_state_mon=0\n"
            "[proxy_0]\n"
            f"reg_proxy=<{account.proxy}>\n"
            # Without a route, PUBLISH, SUBSCRIBE and MESSAGE go to the domain.
            f"reg_route=<{account.proxy}>\n"
            f"reg_identity=<sip:{account.aor}>\n"
            "reg_expires=600\nreg_sendregister=1\npublish=1\n"
            "[auth_info_0]\n"
            f"username={account.user}\npasswd={account.password}\n"
            f"realm={account.domain}\ndomain={account.domain}\n"
            "[friend_0]\n"
            f"url=<sip:{account.contact}>\nsubscribe=1\npol=accept\n"
        )

    async def launch(self) -> None:
        assert LINPHONEC is not None, missing_clients()
        self.configure()
        rc = self.workdir / "linphonerc"
        await self.start([LINPHONEC, "-c", str(rc), "-d", "6", "-l", str(self.log)])

    async def stop(self, grace: float = 3) -> None:
        process = self.process
        if process is not None and process.stdin is not None and process.returncode is None:
            # It unregisters and unsubscribes before it exits.
            with contextlib.suppress(OSError):
                process.stdin.write(b"quit\n")
        await super().stop(grace)

    def parse(self, line: str) -> None:
        if match := self._message.search(line):
            self.received_messages.append((_aor(match[1]), match[2]))
        elif match := self._friend.search(line):
            self.presence_seen.append((_aor(match[1]), match[2].strip().lower()))

    def parse_partial(self, text: str) -> None:
        if "Password for" in text:
            self.problem = (
                f"it stopped at a password prompt ({text.strip()!r}): a TLS server it "
                "connected to asked it for a client certificate"
            )

    async def poll(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as log:
            log.seek(self._log_offset)
            chunk = log.read()
        self._log_offset += len(chunk)
        text = self._log_partial + chunk.decode(errors="replace")
        *complete, self._log_partial = text.split("\n")
        for line in complete:
            if match := self._registration.search(line):
                if match[1] == "Ok":
                    self.registered = True
                else:
                    self.problem = f"registration failed: {line}"
            elif match := self._delivery.search(line):
                self.deliveries.append((_aor(match[1]), match[2]))

    def tail(self, lines: int = 60) -> str:
        # The SIP messages of its log say more than its debug lines.
        sip = []
        if self.log.exists():
            for line in self.log.read_text(errors="replace").splitlines():
                if re.match(r"^(SIP/2\.0 \d|[A-Z]+ sips?:)", line) or (
                    "-error-" in line and "soundcard" not in line
                ):
                    sip.append(line)
        return (
            f"{super().tail(lines)}\n--- linphonec log ({self.log}): SIP start lines and "
            "errors ---\n" + "\n".join(sip[-lines:])
        )

    async def send_message(self, to: str, text: str) -> None:
        """Send a pager MESSAGE; return when Linphone reports it delivered (a 2xx)."""
        process = self.process
        assert process is not None
        assert process.stdin is not None
        sent = sum(1 for who, _ in self.deliveries if who == to)
        process.stdin.write(f"chat sip:{to} {text}\n".encode())
        await process.stdin.drain()
        await self.until(
            f"delivery of MESSAGE {text!r} to {to}",
            lambda: sum(1 for who, _ in self.deliveries if who == to) > sent,
        )
        outcome = [state for who, state in self.deliveries if who == to][-1]
        if outcome != "Delivered":
            raise AssertionError(
                f"linphonec: MESSAGE {text!r} to {to}: {outcome} (it got no 2xx)\n{self.tail()}"
            )


@contextlib.asynccontextmanager
async def baresip(account: Account, workdir: Path, ip: str) -> AsyncIterator[Baresip]:
    """baresip started in ``workdir`` (its SIP listener on ``ip``); stopped after."""
    workdir.mkdir(parents=True)
    client = Baresip(account, workdir, ip)
    try:
        await client.launch()
        yield client
    finally:
        await client.stop()


@contextlib.asynccontextmanager
async def linphone(account: Account, workdir: Path) -> AsyncIterator[Linphone]:
    """linphonec started in ``workdir`` (its HOME); stopped after."""
    workdir.mkdir(parents=True)
    client = Linphone(account, workdir)
    try:
        await client.launch()
        yield client
    finally:
        await client.stop()
