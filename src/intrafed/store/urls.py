"""Database URLs as the home's ``store.url`` and ``intrafed init --db`` give them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

POSTGRESQL_SCHEMES = ("postgresql", "postgres")


def is_postgresql(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return url.partition(":")[0].lower() in POSTGRESQL_SCHEMES


def masked(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) shown as
    ``***``: what messages print."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = "&".join(
        "password=***" if item.partition("=")[0].lower() == "password" else item
        for item in parts.query.split("&")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
