"""Command-line options generated from the run spec's field metadata, grouped by topic in ``--help``.

Each option names its help section (``cli.sections``: the spec group's title, or the command's own
section). The options themselves are written once, in ``spec``: name, default, help, short flag, parser
and range come from there.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from ..backends import backend_names
from ..errors import ExitCode, RunAborted, UsageError
from ..locations import URL_LIKE
from ..spec import (
    GROUPS,
    Content,
    Group,
    Images,
    Limits,
    Network,
    Output,
    Performance,
    Retries,
    Setting,
    Timeouts,
    setting_of,
)
from .sections import option

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

RUN_GROUPS = (Output, Network, Timeouts, Retries, Content, Images, Limits, Performance)
"""The spec groups of every downloading command (``fetch`` adds the list's, the dataset's and the
cluster's)."""

SPEC_NAMES = frozenset(f.name for g in GROUPS for f in dataclasses.fields(g))
"""Every setting of the run spec; a command's other parameters (``-q``, ``LIST``) are its own."""


def _parse(
    parser: Callable[[str], T],
) -> Callable[[click.Context, click.Parameter, str | tuple[str, ...] | None], T | tuple[T, ...] | None]:
    def callback(
        ctx: click.Context, param: click.Parameter, value: str | tuple[str, ...] | None
    ) -> T | tuple[T, ...] | None:
        if value is None:
            return None
        try:
            if isinstance(value, tuple):
                return tuple(parser(v) for v in value)
            return parser(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _type(
    f: dataclasses.Field[Any], s: Setting
) -> click.Choice[str] | click.IntRange | click.FloatRange | click.Path | None:
    """The click type of a field: a choice, a range for numbers, a path, or text."""
    if s.choices:
        return click.Choice(backend_names() if s.choices == ("@backends",) else s.choices)
    base = str(f.type).split(" |")[0]
    lowest = s.minimum
    if base == "int":
        return click.IntRange(min=None if lowest is None else int(lowest), min_open=s.above_minimum)
    if base == "float":
        return click.FloatRange(min=lowest, min_open=s.above_minimum)
    if base == "Path":
        return _Folder(file_okay=False, path_type=Path)
    return None


class _Folder(click.Path):
    """A folder option whose URL-looking value reaches the spec as typed (``pathlib`` would fold
    ``s3://b`` into ``s3:/b``), where ``locations.local_path`` accepts or refuses it."""

    def convert(
        self, value: str | os.PathLike[str], param: click.Parameter | None, ctx: click.Context | None
    ) -> str | bytes | os.PathLike[str]:
        if isinstance(value, str) and URL_LIKE.match(value):
            return value
        return super().convert(value, param, ctx)


class LocalOut(click.Path):
    """OUT of a command that reads a run's files (``report``, ``failures``, ``status``): a local folder.
    A store's URL is refused with where its rows are kept: the run's local work folder."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, exists=True, path_type=Path)

    def convert(
        self, value: str | os.PathLike[str], param: click.Parameter | None, ctx: click.Context | None
    ) -> str | bytes | os.PathLike[str]:
        if isinstance(value, str) and URL_LIKE.match(value):
            self.fail(
                f"{value}: this command reads a local OUT; a dataset written to a store keeps its rows, "
                "its run.json and its state database in its local work folder (--work-dir, default "
                "~/.cache/downloader/out-HASH): give that folder",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


def make_option(f: dataclasses.Field[Any], s: Setting, **override: object) -> Callable[[F], F]:
    """One click option for one spec field."""
    decls = [s.short] if s.short else []
    if s.multiple:  # one value per flag (-H, --dns-server), collected into the tuple
        decls += [s.flag or "--" + f.name.replace("_", "-"), f.name]
        kwargs: dict[str, Any] = {"multiple": True, "callback": _parse(s.parse or str)}
    elif isinstance(f.default, bool):
        decls.append("--" + f.name.replace("_", "-"))
        kwargs = {"is_flag": True, "default": f.default}
    else:
        decls.append("--" + f.name.replace("_", "-"))
        default = s.text_default if s.parse else f.default
        kwargs = {"default": default, "show_default": default not in (None, "", ())}
        if s.parse:
            kwargs["callback"] = _parse(s.parse)
        else:
            kwargs["type"] = _type(f, s)
    kwargs["help"] = s.help
    kwargs.update(override)
    return option(*decls, **kwargs)


def spec_options(
    *groups: type[Group], extra: list[Callable[[F], F]] | None = None, **overrides: Mapping[str, object]
) -> Callable[[F], F]:
    """Add the CLI settings of ``groups`` to a command, in a help section per group title, then the
    ``extra`` options (a command's own, each naming its section); ``overrides`` changes one setting's
    option."""
    decorators: list[Callable[[F], F]] = [
        make_option(f, s, section=group.TITLE, **overrides.get(f.name, {}))
        for group in groups
        for f in dataclasses.fields(group)
        if (s := setting_of(f)).cli
    ]
    decorators += extra or []

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


display = functools.partial(option, section="Display")
DISPLAY = [
    display("-q", "--quiet", is_flag=True, help="No progress and no summary; only errors."),
    display("-v", "--verbose", is_flag=True, help="Print each failure as it happens."),
    display(
        "--progress",
        type=click.Choice(["auto", "bar", "lines", "none"]),
        default="auto",
        show_default=True,
        help="auto: a bar on a terminal, else a status line every --progress-interval seconds.",
    ),
    display(
        "--progress-interval",
        type=click.FloatRange(min=0, min_open=True),
        default=10.0,
        show_default=True,
        help="Seconds between status lines.",
    ),
    display(
        "--log-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Append warnings, each failure and the summary to this file.",
    ),
    display("--debug", is_flag=True, help="Show tracebacks and debug logs."),
]
"""The display options every downloading command shares (not settings of the run)."""


SUMMARY_LOG = "downloader.summary"
"""The summary goes to ``--log-file`` through this logger; on the terminal it is printed."""


def setup_logging(
    *, quiet: bool = False, verbose: bool = False, debug: bool = False, log_file: Path | None = None
) -> None:
    """Warnings on stderr (errors only with ``-q``), failures too with ``-v``, everything at INFO and
    above in ``--log-file``; ``--debug`` shows debug logs."""
    level = (
        logging.DEBUG if debug else logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    )
    stderr = logging.StreamHandler()
    stderr.setLevel(level)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(message)s" if debug else "%(message)s"))
    stderr.addFilter(lambda record: record.name != SUMMARY_LOG)  # the summary is printed, not logged, there
    handlers: list[logging.Handler] = [stderr]
    if log_file is not None:
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(logging.DEBUG if debug else logging.INFO)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(to_file)
    root = logging.getLogger("downloader")
    close_logging()
    root.handlers = handlers
    root.setLevel(min(h.level for h in handlers))
    root.propagate = False


def explicit_settings() -> frozenset[str]:
    """The settings this command line gave (on the line or through the environment), not defaults."""
    ctx = click.get_current_context()
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return frozenset(name for name in SPEC_NAMES if ctx.get_parameter_source(name) in given)


def split_params(params: dict[str, Any]) -> dict[str, object]:
    """Take the run spec's settings out of a command's parameters (the rest stay for the command)."""
    return {name: params.pop(name) for name in list(params) if name in SPEC_NAMES}


def close_logging() -> None:
    """Close the handlers ``setup_logging`` opened (the log file)."""
    root = logging.getLogger("downloader")
    for handler in root.handlers:
        handler.close()
    root.handlers = []


def _setup_logging_from(params: Mapping[str, object]) -> None:
    """``setup_logging`` from a command's display options, those it has (``report`` has only --debug)."""
    log_file = params.get("log_file")
    setup_logging(
        quiet=bool(params.get("quiet")),
        verbose=bool(params.get("verbose")),
        debug=bool(params.get("debug")),
        log_file=log_file if isinstance(log_file, Path) else None,
    )


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Errors become one line and their exit code; ``--debug`` shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(kwargs.get("debug"))
        try:
            _setup_logging_from(kwargs)
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except UsageError as exc:
            if debug:
                raise
            raise click.UsageError(str(exc)) from None
        except (RunAborted, OSError) as exc:  # an OSError that escapes is the machine's, not a bug
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code if isinstance(exc, RunAborted) else ExitCode.ABORTED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as exc:  # nothing expected it: a bug, with a code of its own (not a full disk's)
            if debug:
                raise
            name = type(exc).__name__
            click.echo(f"internal error: {name}: {exc} (a bug: please report it with --debug)", err=True)
            sys.exit(ExitCode.INTERNAL)
        finally:
            close_logging()

    return wrapper
