"""The error tree's kinds: ``errors.KINDS`` is read off the classes; this holds the other ends, so a kind
cannot be added in one place and missed in another (a subclass elsewhere, the tree drawn in the docstring,
the README's list)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import downloader
from downloader import errors

README = Path(__file__).resolve().parent.parent / "README.md"


def every_subclass(cls: type[errors.DownloadError]) -> set[type[errors.DownloadError]]:
    return {cls, *(sub for child in cls.__subclasses__() for sub in every_subclass(child))}


def test_every_download_error_in_the_package_has_a_kind_of_kinds() -> None:
    for info in pkgutil.walk_packages(downloader.__path__, "downloader."):
        if info.name == "downloader.__main__":  # importing it runs the command line
            continue
        try:
            importlib.import_module(info.name)
        except errors.UsageError:  # an optional extra not installed here
            continue
    kinds = {cls.kind for cls in every_subclass(errors.DownloadError)}
    assert kinds == set(errors.KINDS)
    assert len(errors.KINDS) == len(set(errors.KINDS)) == 25


def test_every_kind_is_drawn_in_the_tree_and_listed_in_the_readme() -> None:
    tree, readme = errors.__doc__ or "", README.read_text()
    for kind in errors.KINDS:
        assert re.search(rf"\b{kind}\b", tree), kind
        assert f"`{kind}`" in readme, kind
