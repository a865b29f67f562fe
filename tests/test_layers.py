"""The architecture rule of docs/design.md, held by walking the imports: modules import only lower layers,
and each third-party library has one owner."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import PKG, module_name

FLOORS: list[tuple[str, list[str]]] = [
    # (floor, its rooms), from the ground up; a room may import rooms on its own floor listed before it
    ("ground", ["version", "errors", "locations", "models", "keys", "spec", "memory"]),
    ("input", ["arrow", "names", "sources", "marks", "inputs"]),
    (
        "storage",
        [
            "writers",
            "writers.files",
            "writers.tar",
            "writers.spool",
            "writers.routed",
            "manifest",
            "runfile",
            "state",
            "state.sql",
            "state.base",
            "state.sqlite",
            "state.mysql",
            "state.postgres",
            "state.drivers",
            "state.local",
            "stores.base",
            "stores.folder",
            "stores.s3",
            "stores.blocking",
            "stores",
            "origin",
        ],
    ),
    ("processing", ["checks", "robotstxt", "addresses", "stages", "stages.geometry", "stages.images"]),
    (
        "transfer",
        [
            "dnsclient",
            "resolver",
            "backends",
            "backends.gate",
            "backends.base",
            "backends.aio",
            "backends.sync",
            "backends.curl",
            "backends.reqwest",
        ],
    ),
    (
        "engine",
        [
            "engine",
            "engine.rows",
            "engine.hosts",
            "engine.robots",
            "engine.timers",
            "engine.ledger",
            "engine.results",
            "engine.attempts",
            "engine.slots",
            "engine.engine",
        ],
    ),
    ("loop", ["loop"]),
    ("application", ["app", "app.progress", "app.summary", "app.assemble", "app.procs"]),
    (
        "dataset",
        [
            "dataset",
            "dataset.remote",
            "dataset.shardfiles",
            "dataset.statedb",
            "dataset.tracking",
            "dataset.lanes",
            "dataset.shard",
            "dataset.status",
            "dataset.runners",
            "dataset.runners.ranks",
            "dataset.runners.serial",
            "dataset.runners.pool",
            "dataset.runners.dask",
            "dataset.runners.leased",
        ],
    ),
    ("run", ["app.run", "app.api"]),
    ("side", ["report.collect", "report.svg", "report.page", "report", "trials", "showcase"]),
    (
        "commands",
        [
            "cli.sections",
            "cli.options",
            "cli.ui",
            "cli.state",
            "cli.fetch",
            "cli.demo",
            "cli.report",
            "cli.bench",
            "cli",
            "__main__",
        ],
    ),
]
LAYERS = {room: i for i, (_floor, rooms) in enumerate(FLOORS) for room in rooms}
ORDER = {room: n for n, room in enumerate(r for _floor, rooms in FLOORS for r in rooms)}
LAYERS["__init__"] = 0
OWNERS = {
    "aiohttp": {"backends.aio", "origin"},
    "requests": {"backends.sync"},
    "urllib3": {"backends.sync"},
    "aiofiles": {"writers.files"},
    "click": {room for room in LAYERS if room == "cli" or room.startswith("cli.")},  # the commands' floor
    "uvloop": {"loop"},
    "tqdm": {"app.progress"},
    "matplotlib": {"trials"},
    "pycurl": {"backends.curl"},
    "pyreqwest": {"backends.reqwest"},
    "pyarrow": {"arrow"},
    "aiolimiter": {"engine.hosts"},
    "orjson": {"manifest"},
    "idna": {"names"},
    "PIL": {"stages.images"},
    "aiomysql": {"state.mysql"},
    "pymysql": {"state.mysql"},
    "asyncpg": {"state.postgres"},
    "sqlite3": {"state.sqlite", "keys"},
    "pyvips": set(),
    "dns": {"dnsclient"},
    "dask": {"dataset.runners.dask"},
    "distributed": {"dataset.runners.dask"},
    "aiobotocore": {"stores.s3"},
    "botocore": {"stores.s3"},
    "obstore": set(),
    "s3fs": set(),
    "fsspec": set(),
}


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (type-only imports are no dependency)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved inside the package)."""
    tree = ast.parse(path.read_text())
    package = list(path.parent.relative_to(PKG).parts)
    found: set[str] = set()
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join([*base, node.module] if node.module else base)
                found.add("downloader." + mod if mod else "downloader")
                if not node.module:
                    found.update(
                        f"downloader.{'.'.join([*base, a.name])}".replace("..", ".") for a in node.names
                    )
            else:
                found.add(node.module or "")
    return found


def internal(name: str) -> str | None:
    if name == "downloader":
        return "__init__"
    if name.startswith("downloader."):
        return name.removeprefix("downloader.")
    return None


def test_imports_point_down() -> None:
    wrong = []
    for path in PKG.rglob("*.py"):
        me = module_name(path) or "__init__"
        if me == "__init__":  # the facade: its imports are lazy (TYPE_CHECKING and module __getattr__)
            continue
        for name in imports(path):
            target = internal(name)
            if target is None or target not in LAYERS:
                continue
            if target in (me, "__init__"):
                continue
            if LAYERS[target] > LAYERS[me] or (LAYERS[target] == LAYERS[me] and ORDER[target] > ORDER[me]):
                wrong.append(f"{me} imports {target}")
    assert wrong == []


def test_each_library_has_one_owner() -> None:
    wrong = []
    for path in PKG.rglob("*.py"):
        me = module_name(path) or "__init__"
        for name in imports(path):
            top = name.split(".")[0]
            if top in OWNERS and me not in OWNERS[top]:
                wrong.append(f"{me} imports {top}")
    assert wrong == []


def test_every_module_has_a_layer() -> None:
    assert {module_name(p) or "__init__" for p in PKG.rglob("*.py")} <= set(LAYERS)
