"""The version a user is shown is the package's own."""

from __future__ import annotations

from downloader.version import __version__
from tests.helpers import invoke


def test_version_option_prints_the_package_version() -> None:
    res = invoke("--version")
    assert res.exit_code == 0 and __version__ in res.output
