"""The checks every setting's value goes through, and the error that names the setting,
what is wrong with it and how to fix it."""

from __future__ import annotations

import ipaddress
import re


class ConfigError(Exception):
    """A setting that cannot be accepted: which setting, what is wrong, how to fix it."""

    def __init__(self, setting: str, message: str, fix: str) -> None:
        super().__init__(f"{setting}: {message} — {fix}")
        self.setting = setting
        self.message = message
        self.fix = fix


CONNECTION_TRANSPORTS = ("TCP", "TLS", "MTLS")
ROUTE_TRANSPORTS = ("TCP", "TLS")

# RFC 1035 labels; a final label of letters (so an IP address is not a domain).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FQDN_RE = re.compile(rf"(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?")
_CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")


def check_ip(setting: str, value: str) -> str:
    """``value`` as a normalized IP address."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(
            setting, f"{value!r} is not an IP address", "give an address such as 192.0.2.10"
        ) from None


def check_fqdn(setting: str, value: str) -> str:
    """``value`` in lower case when it is a fully qualified domain name."""
    if not is_fqdn(value):
        raise ConfigError(
            setting,
            f"{value!r} is not a fully qualified domain name",
            "give a name such as imp1.example.com",
        )
    return value.lower()


def check_cluster(setting: str, value: str | None) -> str | None:
    """An IM&P cluster name (1 to 63 letters, digits, dots, hyphens or underscores), or
    None."""
    if value is not None and not _CLUSTER_RE.fullmatch(value):
        raise ConfigError(
            setting,
            f"{value!r} is not a cluster name",
            "use 1 to 63 letters, digits, dots, hyphens or underscores",
        )
    return value


def is_fqdn(value: str) -> bool:
    """Whether ``value`` is a fully qualified domain name."""
    return bool(_FQDN_RE.fullmatch(value)) and len(value) <= 253


def check_domain(setting: str, value: str) -> str:
    """A SIP domain such as ``example.com`` (lower case)."""
    if not _FQDN_RE.fullmatch(value) or len(value) > 253:
        raise ConfigError(
            setting, f"{value!r} is not a domain", "give a domain such as example.com"
        )
    return value.lower()


def check_aor(setting: str, value: str) -> str:
    """An address of record ``user@domain`` (the domain in lower case)."""
    user, at, domain = value.rpartition("@")
    if not at or not _USER_RE.fullmatch(user):
        raise ConfigError(
            setting, f"{value!r} is not user@domain", "give an address such as alice@example.com"
        )
    return f"{user}@{check_domain(setting, domain)}"


def check_port(setting: str, value: int) -> int:
    """A TCP port, 1-65535."""
    if not 1 <= value <= 65535:
        raise ConfigError(
            setting, f"port {value} is outside 1-65535", "choose a port between 1 and 65535"
        )
    return value


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (else a name)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
