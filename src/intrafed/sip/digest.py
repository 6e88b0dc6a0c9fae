"""HTTP Digest for SIP (RFC 3261 §22, RFC 8760 SHA-256, RFC 7616), sans-IO.

Nonces are a timestamp signed with the node's secret, so any nonce can be checked without
remembering it; what is remembered is their use (``nc``), so that a captured answer cannot
be replayed. The clock is the caller's (``now``), as everywhere in ``intrafed.sip``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
import math
import re
import struct
from dataclasses import dataclass

from intrafed.sip import _abnf
from intrafed.sip.errors import LocalSipError, RemoteSipError

# RFC 8760 §2: SHA-256 first, MD5 for clients that know nothing else.
ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
NONCE_LIFETIME = 300.0
"""Seconds a nonce stays valid; an older one gets a new challenge with ``stale=true``."""
NONCE_TABLE_SIZE = 65_536
"""Nonces whose use is remembered at most (about 5 MB)."""
# Above any 8-hex-digit nc: the nonce takes no further answer.
_SPENT = 1 << 32
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")

# auth-param = auth-param-name EQUAL ( token / quoted-string )
_AUTH_PARAM_RE = re.compile(
    rf"[ \t]*(?P<name>{_abnf.TOKEN})[ \t]*=[ \t]*"
    rf"(?P<value>{_abnf.QUOTED_STRING}|{_abnf.TOKEN})[ \t]*(?:,|$)"
)


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return _abnf.QUOTED_PAIR_RE.sub(r"\1", value[1:-1])
    return value


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """An Authorization / Proxy-Authorization header with the Digest scheme."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def _parse_digest_params(value: str, what: str) -> dict[str, str]:
    """The auth-params of a Digest header, names lower-cased and values unquoted."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise RemoteSipError(f"{what} scheme {scheme[:32]!r} is not Digest")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _AUTH_PARAM_RE.match(rest, position)
        if match is None:
            raise RemoteSipError(
                f"malformed Digest parameter at {rest[position : position + 32]!r}"
            )
        params[match.group("name").lower()] = _unquote(match.group("value"))
        position = match.end()
    return params


def parse_credentials(value: str) -> DigestCredentials:
    """Parse ``Digest username="…", realm="…", …``; ``RemoteSipError`` (400) names the flaw."""
    params = _parse_digest_params(value, "authorization")
    missing = [
        name for name in ("username", "realm", "nonce", "uri", "response") if name not in params
    ]
    if missing:
        raise RemoteSipError(f"Digest credentials lack {', '.join(missing)}")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in ALGORITHMS:
        raise RemoteSipError(f"Digest algorithm {algorithm} is not supported (SHA-256, MD5)")
    qop = params.get("qop")
    if qop is not None and (qop != "auth" or "nc" not in params or "cnonce" not in params):
        raise RemoteSipError("Digest qop must be auth, with nc and cnonce")
    if qop is not None and _NC_RE.fullmatch(params["nc"]) is None:
        raise RemoteSipError("Digest nc must be 8 hexadecimal digits")
    return DigestCredentials(
        params["username"],
        params["realm"],
        params["nonce"],
        params["uri"],
        params["response"].lower(),
        algorithm,
        qop,
        params.get("nc"),
        params.get("cnonce"),
        params.get("opaque"),
    )


def _hash(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](
        text.encode("utf-8", "surrogateescape"), usedforsecurity=False
    ).hexdigest()


def expected_response(credentials: DigestCredentials, ha1: str, method: str) -> str:
    """The response a client holding ``ha1`` computes for ``method`` (RFC 7616 §3.4.1)."""
    algorithm = credentials.algorithm
    ha2 = _hash(algorithm, f"{method}:{credentials.uri}")
    if credentials.qop == "auth":
        material = f"{ha1}:{credentials.nonce}:{credentials.nc}:{credentials.cnonce}:auth:{ha2}"
    else:
        material = f"{ha1}:{credentials.nonce}:{ha2}"
    return _hash(algorithm, material)


def verify(credentials: DigestCredentials, ha1: str, method: str) -> bool:
    """Whether the credentials prove knowledge of the password behind ``ha1``."""
    return hmac.compare_digest(expected_response(credentials, ha1, method), credentials.response)


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A WWW-Authenticate / Proxy-Authenticate header with the Digest scheme (client side)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> DigestChallenge:
    """Parse ``Digest realm="…", nonce="…", …``; ``RemoteSipError`` names the flaw.

    An algorithm this module cannot compute is kept as sent: the client skips that one.
    """
    params = _parse_digest_params(value, "challenge")
    missing = [name for name in ("realm", "nonce") if name not in params]
    if missing:
        raise RemoteSipError(f"Digest challenge lacks {', '.join(missing)}")
    qop = tuple(option.strip() for option in params.get("qop", "").split(",") if option.strip())
    return DigestChallenge(
        params["realm"],
        params["nonce"],
        params.get("algorithm", "MD5").upper(),
        qop,
        params.get("opaque"),
        params.get("stale", "").lower() == "true",
    )


def answer_challenge(
    challenge: DigestChallenge,
    username: str,
    ha1: str,
    method: str,
    uri: str,
    *,
    cnonce: str,
    nc: int = 1,
) -> DigestCredentials:
    """The credentials a client holding ``ha1`` sends for ``challenge`` (RFC 7616 §3.4):
    qop=auth when offered, else the RFC 2069 form. ``LocalSipError`` for an algorithm
    this module does not compute."""
    if challenge.algorithm not in ALGORITHMS:
        raise LocalSipError(f"Digest algorithm {challenge.algorithm} is not supported")
    with_qop = "auth" in challenge.qop
    unsigned = DigestCredentials(
        username,
        challenge.realm,
        challenge.nonce,
        uri,
        "",
        challenge.algorithm,
        "auth" if with_qop else None,
        f"{nc:08x}" if with_qop else None,
        cnonce if with_qop else None,
        challenge.opaque,
    )
    return dataclasses.replace(unsigned, response=expected_response(unsigned, ha1, method))


def format_credentials(credentials: DigestCredentials) -> str:
    """An Authorization / Proxy-Authorization value for ``credentials``."""
    quoted = [
        ("username", credentials.username),
        ("realm", credentials.realm),
        ("nonce", credentials.nonce),
        ("uri", credentials.uri),
        ("response", credentials.response),
    ]
    parts = [f'{name}="{_quote(value)}"' for name, value in quoted]
    parts.append(f"algorithm={credentials.algorithm}")
    if credentials.qop is not None:
        parts += [f"qop={credentials.qop}", f"nc={credentials.nc}"]
        parts.append(f'cnonce="{_quote(credentials.cnonce or "")}"')
    if credentials.opaque is not None:
        parts.append(f'opaque="{_quote(credentials.opaque)}"')
    return "Digest " + ", ".join(parts)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class NonceIssuer:
    """Makes and checks nonces: base64(timestamp || counter || HMAC(secret, both)), and
    remembers their use so that a captured answer cannot be replayed: per nonce, ``nc``
    must strictly increase, and a nonce answered without qop (RFC 2069), or spent by a
    REGISTER, is not taken again. The table is bounded: when it is full the oldest entry
    is forgotten, and every nonce issued up to that one's time counts as stale from then
    on (its client is simply challenged again)."""

    def __init__(
        self, secret: bytes, lifetime: float = NONCE_LIFETIME, capacity: int = NONCE_TABLE_SIZE
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must have at least 16 bytes")
        self._secret = secret
        self.lifetime = lifetime
        self.capacity = capacity
        self._counter = itertools.count()
        self._used: dict[bytes, tuple[float, int]] = {}
        """Nonce (its stamp and counter) -> (issued at, highest nc seen; _SPENT)."""
        self._floor = -math.inf

    def issue(self, now: float) -> str:
        """A fresh nonce (never the same twice, even within one clock tick)."""
        stamp = struct.pack(">dQ", now, next(self._counter))
        signature = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        return base64.b64encode(stamp + signature).decode("ascii")

    def check(self, nonce: str, now: float) -> str:
        """``valid``, ``stale`` (ours but too old, or forgotten: challenge again with
        stale=true) or ``invalid`` (not ours)."""
        stamp = self._stamp(nonce)
        if stamp is None:
            return "invalid"
        issued = struct.unpack(">d", stamp[:8])[0]
        if not issued <= now <= issued + self.lifetime or issued <= self._floor:
            return "stale"
        return "valid"

    def use(self, nonce: str, nc: str | None, now: float, *, last: bool = False) -> bool:
        """Record one verified answer with ``nonce`` (which ``check`` found valid): False
        when it is a replay, i.e. ``nc`` is not above the highest seen for this nonce, or
        the nonce was spent. No ``nc`` (RFC 2069) or ``last`` spends the nonce."""
        stamp = self._stamp(nonce)
        if stamp is None:
            return False
        self._forget(now)
        issued = struct.unpack(">d", stamp[:8])[0]
        if issued <= self._floor:
            return False
        count = _SPENT if nc is None or last else int(nc, 16)
        seen = self._used.pop(stamp, None)
        if seen is not None and seen[1] >= count:
            self._used[stamp] = seen
            return False
        while len(self._used) >= self.capacity:
            oldest = next(iter(self._used))
            self._floor = max(self._floor, self._used.pop(oldest)[0])
        if issued <= self._floor:
            return False
        self._used[stamp] = (issued, count)
        return True

    def __len__(self) -> int:
        """How many nonces' use is remembered."""
        return len(self._used)

    def _forget(self, now: float) -> None:
        """Drop the entries of nonces that expired (mostly at the front: first use order)."""
        while self._used:
            oldest = next(iter(self._used))
            if self._used[oldest][0] + self.lifetime >= now:
                return
            del self._used[oldest]

    def _stamp(self, nonce: str) -> bytes | None:
        """The signed stamp (time and counter) of a nonce of ours, else None."""
        try:
            raw = base64.b64decode(nonce.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != 32:
            return None
        stamp, signature = raw[:16], raw[16:]
        expected = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        return stamp if hmac.compare_digest(expected, signature) else None


def challenge(realm: str, nonce: str, algorithm: str, *, stale: bool = False) -> str:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 8760: one per algorithm)."""
    value = f'Digest realm="{realm}", nonce="{nonce}", algorithm={algorithm}, qop="auth"'
    return value + (", stale=true" if stale else "")
