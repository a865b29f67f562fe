"""docs/design.md's "Floors and rooms" table names every module of the package, and nothing that is gone.

How a room is written there (in backquotes), and what it covers (module names as tests/test_layers.py
spells them):

- `checks` or `engine/hosts`: that module (checks, engine.hosts);
- `state/`, a folder alone: the package and every module in it;
- `backends/` (`gate`, `base`...) or `report` (`collect`...): the package and the modules in the brackets
  (`__init__` is the package itself). A name in backquotes there is a module, so the prose there leaves
  names unquoted (`--help`, no name, may stay).

So a new module is one more name in a row, and a module moved is a name changed."""

from __future__ import annotations

import re

from tests.helpers import PKG, module_name

DESIGN = PKG.parent / "docs" / "design.md"
ROOM = re.compile(r"`([\w./]+)`\s*(?:\(([^()]*)\))?")
"""A room in backquotes, then perhaps its modules in brackets."""
NAME = re.compile(r"`(\w+)`")


def modules() -> set[str]:
    return {module_name(path) for path in PKG.rglob("*.py")}


def table_rows(text: str) -> list[list[str]]:
    """The cells of the "Floors and rooms" table's rows, header and rule left out."""
    section = text.split("## Floors and rooms", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def rooms(cell: str) -> dict[str, set[str] | None]:
    """Each room of a cell, as a dotted name, and the modules listed with it (None: a folder, whole)."""
    found: dict[str, set[str] | None] = {}
    for match in ROOM.finditer(cell):
        written, listed = match.group(1), match.group(2)
        name = written.strip("/").replace("/", ".")
        if listed is not None:
            children = NAME.findall(listed)
            found[name] = {name if c == "__init__" else f"{name}.{c}" for c in children} | {name}
        else:
            found[name] = None if written.endswith("/") else {name}
    return found


def covered(table: dict[str, set[str] | None], present: set[str]) -> set[str]:
    """The modules of ``present`` that the table names."""
    named: set[str] = set()
    for name, listed in table.items():
        named |= (
            listed if listed is not None else {m for m in present if m == name or m.startswith(f"{name}.")}
        )
    return named


def test_every_module_has_its_room_and_every_room_its_module() -> None:
    table: dict[str, set[str] | None] = {}
    for row in table_rows(DESIGN.read_text()):
        table.update(rooms(row[1]))
    present = modules()
    named = covered(table, present)
    assert sorted(present - named) == [], "modules missing from docs/design.md's Floors and rooms"
    assert sorted(named - present) == [], "docs/design.md's Floors and rooms names modules that are gone"
    folders = {name for name, listed in table.items() if listed is None}
    assert folders <= present, "a folder in docs/design.md's Floors and rooms is gone"


def test_the_rooms_are_read_as_written() -> None:
    cell = "`cli/` (`__init__`: the commands; `options`: see `--help`), `state/`, `loop`, `engine/hosts`"
    assert rooms(cell) == {
        "cli": {"cli", "cli.options"},
        "state": None,
        "loop": {"loop"},
        "engine.hosts": {"engine.hosts"},
    }
    assert covered(rooms("`state/`"), {"state", "state.sql", "stages"}) == {"state", "state.sql"}
