"""``OUT/run.json``: the settings that decide a run's paths and contents, written by its first run, so
that a rerun or ``--retry-failed`` makes the same paths however it is invoked.

Which settings those are is said in the run spec itself (``Setting.recorded``), so a new one that decides
paths or contents is recorded by declaring it so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .errors import UsageError
from .spec import GROUPS, RunSpec, setting_of
from .writers.files import prepare_out

RUN_FILE = "run.json"


def recorded_settings() -> list[str]:
    """The names of the settings a run records, in the spec's order."""
    return [f.name for g in GROUPS for f in dataclasses.fields(g) if setting_of(f).recorded]


def _values(spec: RunSpec) -> dict[str, Any]:
    return {name: _jsonable(spec.get(name)) for name in recorded_settings()}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def read(out: Path) -> dict[str, Any] | None:
    """The recorded settings, or None when OUT has no run file yet."""
    try:
        text = (out / RUN_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        settings = data["settings"]
        if not isinstance(settings, dict):
            raise TypeError("settings is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{out / RUN_FILE} is damaged ({exc}); remove it to start that record anew"
        ) from None
    return settings


def write(out: Path, settings: dict[str, Any]) -> None:
    """Write ``run.json`` whole, under a temporary name first (a crash never leaves half of it)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{RUN_FILE}.{os.getpid()}.part"
    tmp.write_text(json.dumps({"version": 1, "settings": settings}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / RUN_FILE)


def settle(spec: RunSpec, explicit: set[str] | frozenset[str]) -> RunSpec:
    """The spec this run uses in OUT: the first run records its settings; a later one takes them over,
    and one that asks explicitly (``explicit``: the settings the user gave) for a different value is a
    usage error that names both."""
    out = spec.output.out
    prepare_out(out)  # a folder that cannot be written stops here, with exit 3
    mine = _values(spec)
    prior = read(out)
    if prior is None:
        write(out, mine)
        return spec
    clashes = [n for n in mine if n in explicit and n in prior and prior[n] != mine[n]]
    if clashes:
        said = "; ".join(f"{_flag(n)} {prior[n]!r} there, {mine[n]!r} now" for n in clashes)
        raise UsageError(
            f"{out} was made with other settings ({said}): use another output folder, or leave those "
            f"options out to reuse what {out / RUN_FILE} records"
        )
    missing = {n: v for n, v in mine.items() if n not in prior}
    if missing:  # a setting newer than the run file: record this run's value for it
        write(out, prior | missing)
    taken = {n: tuple(v) if isinstance(v, list) else v for n, v in prior.items() if n in mine}
    return spec.replace(**taken)
