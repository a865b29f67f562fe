"""``downloader demo``: the main job of most users, end to end, with nothing but this package: a small
WebDataset of resized images from the embedded origin, then its report page.

The origin runs in a child process (as the bench's does), so the run is an ordinary list run
(``fetch_list``), shards, image workers and all, and the origin's CPU time never slows the image
workers' on a small machine. The settings the demo picks are only defaults: any the user gives wins,
and the closing lines print the same command for the user's own list. Without Pillow the images are
stored as they come, and the demo says how to get the image stage.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .app.run import Ui, fetch_list
from .errors import UsageError
from .models import Stats
from .report import build
from .spec import RunSpec
from .stages.images import INSTALL_HINT, available
from .trials import demo_list

DATASET: dict[str, object] = {"output_format": "webdataset", "shard_size": 100}
IMAGES: dict[str, object] = {"image_size": 64, "resize_mode": "center_crop", "encode_format": "jpg"}
"""64 px: the fixtures are 64 to 128 px a side, so most images shrink and every one comes out 64×64."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo made: the run's totals, its folder, the report page (None: none written) and the
    ``fetch`` options that make the same dataset from a list."""

    stats: Stats
    out: Path
    report: Path | None
    options: dict[str, object]

    def closing(self) -> str:
        """The lines that say where the dataset and its report are, and how to do the same at home."""
        shards = sorted(p.name for p in self.out.glob("*.tar"))
        named = f"{shards[0]} … {shards[-1]}" if len(shards) > 1 else ", ".join(shards) or "none"
        flags = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in self.options.items())
        lines = [f"dataset: {self.out} ({len(shards)} WebDataset shards: {named})"]
        if self.report is not None:
            lines.append(f"report:  {self.report} (open it in a browser)")
        lines.append(f"the same from your own list: downloader fetch urls.txt -o dataset/ {flags}")
        return "\n".join(lines)


def dataset_demo(
    settings: dict[str, object], explicit: Collection[str], count: int, latency: float, ui: Ui
) -> DemoResult:
    """Build the demo dataset into ``settings["out"]`` (None: a new folder under the temporary
    directory, kept for the user to look at), then its report page."""
    picked = DATASET | (IMAGES if available() else {})
    if not available():
        ui.announce(f"images stored as they come: {INSTALL_HINT}")
    options = {k: v for k, v in picked.items() if k not in explicit}
    given = settings["out"]
    out = Path(tempfile.mkdtemp(prefix="downloader-demo-")) if given is None else Path(str(given))
    spec = RunSpec.from_options(**(settings | options | {"out": out}))
    with demo_list(count, latency) as listing:
        ui.announce(
            f"origin: a child process serving the fixtures, {latency * 1000:g} ms latency; {count} URLs"
        )
        stats = fetch_list(spec, str(listing), ui, frozenset(explicit) | frozenset(options))
    try:
        page: Path | None = build(out)
    except UsageError:  # nothing was written (an abort before the first row): no page to show
        page = None
    return DemoResult(stats, out, page, {k: _setting(spec, k) for k in picked})


def _setting(spec: RunSpec, name: str) -> object:
    """The value of setting ``name`` in whichever group of ``spec`` holds it."""
    for group in (spec.dataset, spec.images):
        if hasattr(group, name):
            return getattr(group, name)
    raise KeyError(name)
