"""tests/README.md maps every module of the package to the files that test it, and names nothing that is
gone; and tests import shared code from tests/helpers.py, never from conftest or another test file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import PKG, module_name

TESTS = Path(__file__).resolve().parent
ROW = re.compile(r"^\| `([\w.]+)` \| (.+) \|$")


def mapped() -> dict[str, list[str]]:
    """Each row of the map: a module, and the test files its row names."""
    rows = {}
    for line in (TESTS / "README.md").read_text().splitlines():
        found = ROW.match(line)
        if found:
            rows[found[1]] = re.findall(r"`(test_\w+\.py)`", found[2])
    return rows


def test_every_module_has_a_row_and_every_row_a_module() -> None:
    modules = {module_name(p) for p in PKG.rglob("*.py")}
    rows = set(mapped())
    assert sorted(modules - rows) == [], "modules with no row in tests/README.md"
    assert sorted(rows - modules) == [], "rows of tests/README.md for modules that are gone"


def test_every_row_names_test_files_that_exist() -> None:
    for module, files in mapped().items():
        assert files, f"{module} has no test file in tests/README.md"
        missing = [f for f in files if not (TESTS / f).is_file()]
        assert missing == [], f"{module}: {missing} named in tests/README.md but not in tests/"


def test_tests_import_shared_code_from_helpers_only() -> None:
    wrong = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and re.fullmatch(r"tests\.(conftest|test_\w+)", module):
                wrong.append(f"{path.name}: from {module}")
    assert wrong == []
