"""``OUT/run.json``: the settings that decide a run's paths and contents, written by its first run, so
that a rerun or ``--retry-failed`` makes the same paths however it is invoked.

Which settings those are is said in the run spec itself (``Setting.recorded``), so a new one that decides
paths or contents is recorded by declaring it so.

The file also names the run: a random id made once, by whichever worker writes the file first (it is
created exclusively, so workers starting together on shared storage all read the same one). Every worker
writing into OUT thereby agrees on the run the state database knows it by, and two output folders never
share one, even made by the same command from the same list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import NotRequired, TypedDict

from .errors import UsageError
from .spec import GROUPS, RunSpec, setting_of
from .writers.files import prepare_out

RUN_FILE = "run.json"


def recorded_settings() -> list[str]:
    """The names of the settings a run records, in the spec's order."""
    return [f.name for g in GROUPS for f in dataclasses.fields(g) if setting_of(f).recorded]


def _values(spec: RunSpec) -> dict[str, object]:
    return {name: _jsonable(spec.get(name)) for name in recorded_settings()}


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _document(out: Path) -> _Document | None:
    """The whole file, or None when OUT has none yet."""
    try:
        text = (out / RUN_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data["settings"], dict):
            raise TypeError("settings is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{out / RUN_FILE} is damaged ({exc}); remove it to start that record anew"
        ) from None
    found: _Document = data
    return found


def read(out: Path) -> dict[str, object] | None:
    """The recorded settings, or None when OUT has no run file yet."""
    data = _document(out)
    return None if data is None else dict(data["settings"])


def _temporary(out: Path, settings: dict[str, object], run: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{RUN_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
    doc = {"version": 1, "run": run, "settings": settings}
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return tmp


def write(out: Path, settings: dict[str, object]) -> None:
    """Write ``run.json`` whole, under a temporary name first (a crash never leaves half of it); the
    run's id is kept."""
    data = _document(out)
    run = str(data.get("run") or _new_id()) if data else _new_id()
    os.replace(_temporary(out, settings, run), out / RUN_FILE)


def create(out: Path, settings: dict[str, object], run: str | None = None) -> bool:
    """The first record of OUT, with a new run id (or ``run``), made only if no other worker made it
    first (a hard link never replaces a file); whether this one did."""
    tmp = _temporary(out, settings, run or _new_id())
    try:
        os.link(tmp, out / RUN_FILE)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: the last writer wins, as before
        os.replace(tmp, out / RUN_FILE)
        return True
    finally:
        tmp.unlink(missing_ok=True)
    return True


class _Document(TypedDict):
    """``run.json`` as read: its run's id (a file older than ids has none) and the recorded settings."""

    version: NotRequired[int]
    run: NotRequired[str]
    settings: dict[str, object]


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _store_id(store: str | None) -> str | None:
    """A run to a store is named by its URL: workers on other machines, each with its own work folder,
    that start at once make the same record, so the state database sees one run."""
    return None if store is None else hashlib.sha256(store.encode("utf-8")).hexdigest()[:16]


def run_id(out: Path) -> str:
    """The id the state database knows OUT's run by; a run file older than ids gets one now."""
    data = _document(out)
    if data is None:
        raise UsageError(f"{out} has no {RUN_FILE}: it holds no run")
    if not data.get("run"):
        write(out, data["settings"])
        data = _document(out) or data
    return str(data["run"])


def settle(spec: RunSpec, explicit: set[str] | frozenset[str]) -> RunSpec:
    """The spec this run uses in OUT: the first run records its settings; a later one takes them over,
    and one that asks explicitly (``explicit``: the settings the user gave) for a different value is a
    usage error that names both."""
    out = spec.output.out
    prepare_out(out)  # a folder that cannot be written stops here, with exit 3
    mine = _values(spec)
    prior = read(out)
    if prior is None:
        if create(out, mine, _store_id(spec.output.store)):
            return spec
        prior = read(out) or {}  # another worker made it first: its record stands
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
