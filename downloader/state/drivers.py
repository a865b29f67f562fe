"""The driver for a state URL, by its scheme, imported only when asked for (each is an extra)."""

from __future__ import annotations

from . import State, parse_url


def open_state(url: str) -> State:
    """The state database at ``url``, its driver chosen by the scheme and imported only now."""
    where = parse_url(url)
    if where.dialect == "sqlite":
        from .sqlite import SqliteState

        return SqliteState(where)
    if where.dialect == "mysql":
        from .mysql import MysqlState

        return MysqlState(where)
    from .postgres import PostgresState

    return PostgresState(where)
