"""Options listed by topic in ``--help``: each option may name its section, and the commands print the
options section by section, in the order the sections first appear, with one first column for all of
them. Options without a section close the list under "Other options" ("Options" when none has one).

A few lines of our own over click's formatter: cloup did this, but its import alone (it reads package
metadata at import) cost every run more than click's whole import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

COL_MAX = 30
"""A longer first column (the option's flags) moves its help to the next line, as in click."""


class Option(click.Option):
    """A click option that names its help section."""

    def __init__(self, *args: Any, section: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.section = section


def option(*decls: str, section: str | None = None, **attrs: object) -> Callable[[F], F]:
    """``click.option``, listed under ``section`` in ``--help``."""
    return click.option(*decls, cls=Option, section=section, **attrs)


def help_sections(ctx: click.Context, params: list[click.Parameter]) -> dict[str, list[tuple[str, str]]]:
    """The help rows of ``params`` by section title, sections in order of first appearance; the
    options without a section last."""
    sections: dict[str, list[tuple[str, str]]] = {}
    for param in params:
        row = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
        if row is not None:
            title = param.section if isinstance(param, Option) else None
            sections.setdefault(title or "", []).append(row)
    rest = sections.pop("", [])
    if rest:
        sections["Other options" if sections else "Options"] = rest
    return sections


class Command(click.Command):
    """A command that prints its options by section, with one first column for all, so they line up."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = help_sections(ctx, self.get_params(ctx))
        terms = [term for rows in sections.values() for term, _ in rows]
        width = max((len(term) for term in terms if len(term) <= COL_MAX), default=COL_MAX)
        for title, rows in sections.items():
            with formatter.section(title):
                # a term padded to the common width makes click's first column that wide in every section
                formatter.write_dl([(t.ljust(width) if h else t, h) for t, h in rows], col_max=width)


class Group(Command, click.Group):
    """A group with its options by section, whose commands are ``Command`` (and groups ``Group``)."""

    command_class = Command
    group_class = type

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)
