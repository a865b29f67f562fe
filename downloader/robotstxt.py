"""robots.txt as RFC 9309 reads it, sans I/O: a file becomes the rules for one product token, and a URL's
path is matched against them.

Written here rather than taken from ``urllib.robotparser``, which applies the first rule that matches in
file order (not the longest), knows no ``*`` or ``$`` in paths and lets a ``User-agent`` value match as a
substring of the User-Agent: three ways to disagree with the RFC and with the sites that follow it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINES = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(r"[A-Za-z_-]+")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def normalise(path: str) -> str:
    """A path as RFC 9309 compares it: octets beyond ASCII percent-encoded, escapes in upper case, and an
    escaped unreserved character (``%62``) decoded, so ``/%62az`` and ``/baz`` are the same path. ``path``
    holds one character per octet (text decoded as latin-1), so the file's own bytes are encoded as sent."""
    if path.isascii() and "%" not in path:
        return path
    encoded = "".join(c if c < "\x80" else f"%{ord(c):02X}" for c in path)
    return _ESCAPE.sub(_unescape, encoded)


def _unescape(m: re.Match[str]) -> str:
    octet = int(m.group(1), 16)
    return chr(octet) if octet in _UNRESERVED else f"%{octet:02X}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``Allow`` or ``Disallow`` line of the group that applies to us."""

    allow: bool
    path: str
    """The path pattern, normalised; its length decides between rules that match."""
    regex: re.Pattern[str] | None
    """For a pattern with ``*`` or a closing ``$``; None: a plain prefix."""

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None if self.regex else path.startswith(self.path)

    def __str__(self) -> str:
        return f"{'allows' if self.allow else 'disallows'} {self.path}"


def _rule(allow: bool, value: str) -> Rule:
    path = normalise(value)
    if "*" not in path and not path.endswith("$"):
        return Rule(allow, path, None)
    body, end = (path[:-1], r"\Z") if path.endswith("$") else (path, "")
    return Rule(allow, path, re.compile(".*".join(map(re.escape, body.split("*"))) + end, re.DOTALL))


class Rules:
    """The rules that apply to one agent; ``decide`` names the one that settles a path, if any."""

    __slots__ = ("agent", "rules")

    def __init__(self, rules: list[Rule], agent: str) -> None:
        # the most octets first, and of two equally long an Allow (RFC 9309 2.2.2)
        self.rules = sorted(rules, key=lambda r: (-len(r.path), not r.allow))
        self.agent = agent
        """Whose group they are: our product token, or ``*``."""

    def decide(self, path: str) -> Rule | None:
        """The most specific rule matching ``path`` (path and query, as requested); None: allowed."""
        if path == "/robots.txt" or not self.rules:
            return None  # implicitly allowed, and nothing to match
        path = normalise(path)
        for rule in self.rules:
            if rule.matches(path):
                return rule
        return None

    def allows(self, path: str) -> bool:
        rule = self.decide(path)
        return rule is None or rule.allow


def agent_of(value: str) -> str:
    """A ``User-agent`` line's product token, lower case (``*`` for every agent; ``""`` for none)."""
    value = value.strip()
    if value.startswith("*"):
        return "*"
    m = _TOKEN.match(value)
    return m.group(0).lower() if m else ""


def parse(body: bytes, agent: str) -> Rules:
    """The rules of ``body`` for ``agent`` (a lower-case product token): its own groups, merged, else the
    ``*`` groups, merged, else none. Only those are kept: a run holds one such set per host."""
    groups: list[tuple[set[str], list[tuple[bool, str]]]] = []
    in_rules = False
    text = body.decode("latin-1").removeprefix("\xef\xbb\xbf")  # one character per octet; no BOM
    for line in _LINES.split(text):
        key, colon, value = line.partition("#")[0].partition(":")
        key = key.strip().lower()
        value = value.strip()
        if not colon:
            continue
        if key == "user-agent":
            if not groups or in_rules:
                groups.append((set(), []))
                in_rules = False
            groups[-1][0].add(agent_of(value))
        elif key in ("allow", "disallow") and groups:
            in_rules = True
            if value:  # an empty path matches nothing
                groups[-1][1].append((key == "allow", value))
    for name in (agent, "*"):
        chosen = [line for names, lines in groups if name in names for line in lines]
        if chosen or any(name in names for names, _ in groups):
            return Rules([_rule(allow, value) for allow, value in chosen], name)
    return Rules([], "*")
