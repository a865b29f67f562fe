"""``spec.setting`` is typed by its default: a field whose default is not of its type fails mypy, so the
defaults of the run spec are checked where they are written."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from dataclasses import dataclass
from typing import Literal

from downloader.spec import setting


@dataclass(frozen=True)
class Group:
    count: int = setting(3, "fine")
    ratio: float = setting(3, "fine: an int is a float")
    mode: Literal["a", "b"] = setting("a", "fine")
    name: str | None = setting(None, "fine")
    wrong: int = setting("a", "not an int")
    off: Literal["a", "b"] = setting("c", "not a choice")
"""


def test_a_default_of_another_type_fails_mypy(tmp_path: Path) -> None:
    source = tmp_path / "group.py"
    source.write_text(SNIPPET, encoding="utf-8")
    argv = ["--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"), str(source)]
    out, _err, code = api.run(argv)
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert code == 1 and len(errors) == 2, out
    assert ":14: error:" in errors[0] and ":15: error:" in errors[1]  # the two wrong defaults
