"""A structural audit of regular expressions for super-linear backtracking.

It reads a compiled pattern's parse tree (``re._parser``) and reports the shapes that make
Python's backtracking engine take quadratic or worse time on a hostile input:

- two backtracking unbounded repeats that can hand characters to each other: adjacent
  (``[ \\t]+[^\\r\\n]*``), or separated only by optional parts or single characters both
  repeats accept (``[0-9.]*[0-9][0-9.]*``);
- an unbounded repeat whose body can match empty, or whose body ends with an unbounded
  repeat accepting the character the next round starts with (``(?:[ \\t]*;[ \\t]*x)*``);
- for a pattern used to scan (``search``, ``sub``, ``findall``…), an unbounded repeat it
  can start with and no anchor in front: each start position re-reads the same run.

Character sets are compared over a sample alphabet (all of Latin-1 plus a few code points
above it), which is enough for the classes the SIP grammar uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from re import _compiler, _parser  # type: ignore[attr-defined]
from re import _constants as c  # type: ignore[attr-defined]
from typing import Any

_SAMPLE = [*range(256), 0x100, 0x3B1, 0xDC80, 0xFFFD, 0x1F600]
_UNBOUNDED = c.MAXREPEAT
_BACKTRACKING_REPEATS = (c.MAX_REPEAT, c.MIN_REPEAT)
_SINGLE = (c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN)

Chars = frozenset[int]


@dataclass
class _Info:
    nullable: bool
    first: Chars = frozenset()
    alphabet: Chars = frozenset()
    single: Chars | None = None  # the node matches exactly one character of this set
    head: Chars = frozenset()  # what a backtracking unbounded repeat at the start begins with
    tail: Chars = frozenset()  # what a backtracking unbounded repeat at the end can give back


@dataclass
class _Audit:
    pattern: re.Pattern[Any]
    problems: list[str] = field(default_factory=list)

    def chars(self, node: tuple[Any, Any]) -> Chars:
        state = _parser.State()
        state.flags = self.pattern.flags
        sub = _parser.SubPattern(state, [node])
        compiled = _compiler.compile(sub, self.pattern.flags)
        text = isinstance(self.pattern.pattern, str)
        return frozenset(
            code
            for code in _SAMPLE
            if (text or code < 256)
            and compiled.fullmatch(chr(code) if text else bytes([code])) is not None
        )

    def sequence(self, nodes: list[tuple[Any, Any]]) -> _Info:
        flat: list[tuple[Any, Any]] = []
        for op, av in nodes:
            if op is c.SUBPATTERN:
                flat.extend(_flatten(av[-1]))
            else:
                flat.append((op, av))
        infos = [self.node(op, av) for op, av in flat]
        for i, left in enumerate(infos):
            if left.tail:
                self._check_following(left.tail, infos[i + 1 :])
        info = _Info(nullable=True)
        for item in infos:
            if info.nullable:
                info.first |= item.first
                info.head |= item.head
            info.alphabet |= item.alphabet
            if item.tail:
                info.tail = item.tail | (info.tail if item.nullable else frozenset())
            elif not item.nullable and not (item.single is not None and item.single & info.tail):
                info.tail = frozenset()
            info.nullable = info.nullable and item.nullable
        if len(infos) == 1:
            info.single = infos[0].single
        return info

    def _check_following(self, accepted: Chars, following: list[_Info]) -> None:
        for item in following:
            if item.head & accepted:
                self.problems.append(f"two unbounded repeats share {_show(item.head & accepted)}")
                return
            if not (item.nullable or (item.single is not None and item.single & accepted)):
                return

    def node(self, op: Any, av: Any) -> _Info:
        if op in _SINGLE:
            chars = self.chars((op, av))
            return _Info(False, chars, chars, chars)
        if op is c.BRANCH:
            alternatives = [self.sequence(list(branch)) for branch in av[1]]
            single = None
            if all(alt.single is not None for alt in alternatives):
                single = frozenset().union(*(alt.single or () for alt in alternatives))
            return _Info(
                any(alt.nullable for alt in alternatives),
                frozenset().union(*(alt.first for alt in alternatives)),
                frozenset().union(*(alt.alphabet for alt in alternatives)),
                single,
                frozenset().union(*(alt.head for alt in alternatives)),
                frozenset().union(*(alt.tail for alt in alternatives)),
            )
        if op in (*_BACKTRACKING_REPEATS, c.POSSESSIVE_REPEAT):
            low, high, body_nodes = av
            body = self.sequence(list(body_nodes))
            if high == _UNBOUNDED and body.nullable:
                self.problems.append("an unbounded repeat of something that can match empty")
            elif high > 1 and body.tail & body.first:
                self.problems.append(
                    f"a repeat whose rounds share {_show(body.tail & body.first)}"
                    " between an unbounded repeat and the next round's start"
                )
            nullable = low == 0 or body.nullable
            if high == _UNBOUNDED:
                if op not in _BACKTRACKING_REPEATS:
                    return _Info(nullable, body.first, body.alphabet)
                # A preceding repeat may give back characters a round can start with; a
                # following one may take back what the last round's own repeat took.
                tail = body.single if body.single is not None else body.tail
                return _Info(nullable, body.first, body.alphabet, None, body.first, tail)
            single = body.single if low == high == 1 else None
            return _Info(nullable, body.first, body.alphabet, single, body.head, body.tail)
        if op in (c.SUBPATTERN, c.ATOMIC_GROUP):
            inner = self.sequence(list(av[-1] if op is c.SUBPATTERN else av))
            if op is c.ATOMIC_GROUP:
                inner.head = inner.tail = frozenset()
            return inner
        if op in (c.ASSERT, c.ASSERT_NOT):
            self.sequence(list(av[1]))
        # AT, assertions, group references: zero-width for this audit
        return _Info(nullable=True)


def _flatten(nodes: Any) -> list[tuple[Any, Any]]:
    flat: list[tuple[Any, Any]] = []
    for op, av in nodes:
        if op is c.SUBPATTERN:
            flat.extend(_flatten(av[-1]))
        else:
            flat.append((op, av))
    return flat


def _show(chars: Chars) -> str:
    shown = "".join(chr(code) for code in sorted(chars)[:8])
    return repr(shown) + ("…" if len(chars) > 8 else "")


def backtracking_problems(pattern: re.Pattern[Any], *, scanned: bool = False) -> list[str]:
    """Why ``pattern`` can backtrack super-linearly (empty when it cannot).

    ``scanned``: the pattern is also used unanchored (``search``, ``sub``, ``findall``…).
    """
    audit = _Audit(pattern)
    tree = _parser.parse(pattern.pattern, pattern.flags)
    info = audit.sequence(list(tree))
    if scanned and info.head:
        first_op = _flatten(list(tree))[0][0] if len(tree) else None
        if first_op not in (c.AT, c.ASSERT, c.ASSERT_NOT):
            audit.problems.append("a scan that starts with an unbounded repeat re-reads each run")
    return audit.problems
