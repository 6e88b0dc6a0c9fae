"""Where the console listens: an address and port, parsed as ``--listen`` gives them."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from intrafed.config.model import ConfigError
from intrafed.config.values import check_ip, check_port

DEFAULT_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the console listens."""

    ip: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """``IP:PORT`` or ``[IPv6]:PORT``."""
        host, _, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not port.isdigit() or not host:
            raise ConfigError("--listen", f"{text!r} is not IP:PORT", f"e.g. {DEFAULT_LISTEN}")
        return cls(check_ip("--listen", host), check_port("--listen", int(port)))

    @property
    def family(self) -> socket.AddressFamily:
        """IPv4 or IPv6."""
        version = ipaddress.ip_address(self.ip).version
        return socket.AF_INET6 if version == 6 else socket.AF_INET

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it."""
        return ipaddress.ip_address(self.ip).is_loopback

    def host_names(self, node_names: Sequence[str]) -> list[str]:
        """The names a browser may reach the console by (the Host header): its address,
        localhost and the node's names; any name when it listens on every IPv4 address or
        on IPv6. A page on another site whose name an attacker points at this address is
        refused, so it cannot try passwords from the administrator's own browser."""
        address = ipaddress.ip_address(self.ip)
        if address.is_unspecified or address.version == 6:
            return ["*"]
        return [self.ip, "localhost", *node_names]
