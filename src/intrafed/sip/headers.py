"""The header section: raw names and values in order, looked up by canonical name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from intrafed.sip import _abnf
from intrafed.sip.errors import LocalSipError, RemoteSipError

# RFC 3261 §7.3.3 and the IANA registry: compact form -> canonical (lower-case long) name.
COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1: only these may be
# combined into one field line, and only these may be split at commas). Headers such as
# Authorization, WWW-Authenticate or Date contain commas that do not separate values.
LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "in-reply-to",
        "p-asserted-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

# A bounded cache of raw spelling -> canonical name: a peer sending endless distinct
# header names must not grow it without limit.
_CANONICAL_CACHE: dict[str, str] = {}
_CANONICAL_CACHE_LIMIT = 4096


def canonical_name(raw: str) -> str:
    """The lower-case long form of a header name (``v`` and ``VIA`` both give ``via``).

    Raises ``RemoteSipError`` when ``raw`` is not a token.
    """
    canonical = _CANONICAL_CACHE.get(raw)
    if canonical is not None:
        return canonical
    # header-name = token
    if not _abnf.TOKEN_RE.fullmatch(raw):
        raise RemoteSipError(f"malformed header name {raw!r}")
    lowered = raw.lower()
    canonical = COMPACT_FORMS.get(lowered, lowered)
    if len(_CANONICAL_CACHE) < _CANONICAL_CACHE_LIMIT:
        _CANONICAL_CACHE[raw] = canonical
    return canonical


def _key(name: str) -> str:
    """The canonical name for a lookup or edit by our own code: a bad name is our bug."""
    try:
        return canonical_name(name)
    except RemoteSipError as exc:
        raise LocalSipError(exc.reason) from None


def split_list(value: str) -> list[str]:
    """Split a list header value at the commas that are outside quotes and ``<>``.

    An empty value is an empty list; empty elements are kept so that typed parsing can
    reject them (RFC 4475 badinv01).
    """
    if '"' not in value and "<" not in value:
        if not value:
            return []
        return [part.strip(" \t") for part in value.split(",")]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            parts.append(value[start:index].strip(" \t"))
            start = index + 1
    parts.append(value[start:].strip(" \t"))
    return parts


class Headers:
    """The header fields of one message, immutable: order and raw spelling are kept.

    Lookups take any spelling of a name (``"Call-ID"``, ``"call-id"``, ``"i"``).
    Edits return a new ``Headers``.
    """

    __slots__ = ("_fields", "_index", "_lines")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        given = tuple(fields)
        self._fields: tuple[tuple[str, str], ...] | None = given
        self._lines: list[str] | None = None
        index: dict[str, list[str]] = {}
        for raw, value in given:
            try:
                canonical = canonical_name(raw)
            except RemoteSipError as exc:
                raise LocalSipError(exc.reason) from None
            if "\r" in value or "\n" in value:
                raise LocalSipError(f"header {raw} value contains a line break")
            index.setdefault(canonical, []).append(value)
        self._index = index

    @classmethod
    def _from_parsed(cls, lines: list[str], index: dict[str, list[str]]) -> Headers:
        # The parser hands over its unfolded "name: value" lines; (name, value) pairs are
        # only cut from them when someone iterates, and serialization reuses them as is.
        headers = cls.__new__(cls)
        headers._fields = None
        headers._lines = lines
        headers._index = index
        return headers

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """Every field as (raw name, value), in order."""
        fields = self._fields
        if fields is None:
            assert self._lines is not None
            fields = self._fields = tuple(
                (name.rstrip(" \t"), value.strip(" \t"))
                for name, _, value in (line.partition(":") for line in self._lines)
            )
        return fields

    def lines(self) -> list[str]:
        """Every field as a ``name: value`` line (the parsed spelling when unchanged)."""
        if self._lines is not None:
            return self._lines
        return [f"{name}: {value}" for name, value in self.fields]

    @property
    def by_name(self) -> Mapping[str, Sequence[str]]:
        """Field values keyed by canonical name (the fast path for code that knows the key)."""
        return self._index

    def get(self, name: str) -> str | None:
        """The value of the first field named ``name``, or None."""
        values = self._index.get(_key(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """The values of every field named ``name``, one per field line, in order."""
        return list(self._index.get(_key(name), ()))

    def get_list(self, name: str) -> list[str]:
        """The elements of a list header across all its field lines, split at commas.

        Headers whose grammar is not a list (Date, Authorization…) are never split.
        """
        canonical = _key(name)
        values = self._index.get(canonical)
        if not values:
            return []
        if canonical not in LIST_HEADERS:
            return list(values)
        if len(values) == 1:
            return split_list(values[0])
        return [element for value in values for element in split_list(value)]

    def count(self, name: str) -> int:
        """How many field lines are named ``name``."""
        return len(self._index.get(_key(name), ()))

    def names(self) -> list[str]:
        """The canonical names present, in order of first appearance."""
        return list(self._index)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return f"Headers({list(self.fields)!r})"

    def prepend(self, name: str, value: str) -> Headers:
        """A copy with a new field line placed before all others of the same name.

        RFC 3261 §16.6 step 8: a proxy inserts its Via before the existing ones.
        """
        canonical = _key(name)
        fields = list(self.fields)
        position = next(
            (i for i, (raw, _) in enumerate(fields) if canonical_name(raw) == canonical),
            len(fields),
        )
        fields.insert(position, (name, value))
        return Headers(fields)

    def replace(self, name: str, value: str) -> Headers:
        """A copy where ``name`` has the single value ``value``, at its first position."""
        canonical = _key(name)
        fields: list[tuple[str, str]] = []
        placed = False
        for raw, old in self.fields:
            if canonical_name(raw) == canonical:
                if not placed:
                    fields.append((raw, value))
                    placed = True
            else:
                fields.append((raw, old))
        if not placed:
            fields.append((name, value))
        return Headers(fields)

    def remove(self, name: str) -> Headers:
        """A copy without any field named ``name``."""
        canonical = _key(name)
        return Headers((raw, v) for raw, v in self.fields if canonical_name(raw) != canonical)

    def forwarded(self, top: Sequence[tuple[str, str]], max_forwards: str) -> Headers:
        """A copy for forwarding (RFC 3261 §16.6): the ``top`` fields (our Via and
        Record-Route, already valid) before all others, and Max-Forwards set. Parsed lines
        are reused as they are: the proxy's hot path builds no field list."""
        index = dict(self._index)
        for name, value in reversed(top):
            canonical = canonical_name(name)
            index[canonical] = [value, *index.get(canonical, ())]
        had_max_forwards = "max-forwards" in index
        index["max-forwards"] = [max_forwards]
        new_max_forwards = f"Max-Forwards: {max_forwards}"
        lines = [f"{name}: {value}" for name, value in top]
        for line in self.lines():
            if (
                line[:1] in ("M", "m")
                and canonical_name(line.partition(":")[0].rstrip(" \t")) == "max-forwards"
            ):
                lines.append(new_max_forwards)
            else:
                lines.append(line)
        if not had_max_forwards:
            lines.append(new_max_forwards)
        return Headers._from_parsed(lines, index)

    def pop_first_element(self, name: str) -> Headers:
        """A copy without the first list element of ``name`` (RFC 3261 §16.4: pop a Route)."""
        return self._with_first_element(name, None)

    def replace_first_element(self, name: str, value: str) -> Headers:
        """A copy whose first list element of ``name`` is ``value`` (RFC 3261 §18.2.1: the
        top Via with ``received``), in place, the other lines reused as they are."""
        return self._with_first_element(name, value)

    def _with_first_element(self, name: str, replacement: str | None) -> Headers:
        canonical = _key(name)
        values = self._index.get(canonical)
        if not values:
            return self
        first = values[0]
        rest = split_list(first)[1:] if "," in first else []
        if replacement is not None:
            rest.insert(0, replacement)
        index = dict(self._index)
        remaining = [", ".join(rest)] if rest else []
        index[canonical] = remaining + values[1:]
        if not index[canonical]:
            del index[canonical]
        lines = self.lines()
        position = 0
        while canonical_name(name := lines[position].partition(":")[0].rstrip(" \t")) != canonical:
            position += 1
        edited = [f"{name}: {value}" for value in remaining]
        return Headers._from_parsed([*lines[:position], *edited, *lines[position + 1 :]], index)
