"""``downloader demo`` and ``downloader origin``: the embedded origin of fixture images, downloaded from
at once (``demo``) or served until interrupted for trials of one's own (``origin``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..spec import RunSpec
from .options import DISPLAY, RUN_GROUPS, explicit_settings, guarded, spec_options, split_params
from .sections import Command, option
from .ui import finish, make_ui

DEMO_OUT = {
    "default": None,
    "show_default": False,
    "help": "Output folder [default: a temporary folder, kept for the dataset, removed after --files].",
}
DEMO_OWN = [
    option(
        "-n",
        "--count",
        section="Demo",
        type=click.IntRange(min=1),
        default=300,
        show_default=True,
        help="How many URLs to download.",
    ),
    option(
        "--latency",
        section="Demo",
        type=click.FloatRange(min=0),
        default=0.02,
        show_default=True,
        help="Simulated server latency per response, in seconds.",
    ),
    option(
        "--files",
        section="Demo",
        is_flag=True,
        help="Plain files and throughput only: no dataset, no image stage, no report.",
    ),
]


@click.command(cls=Command)
@spec_options(*RUN_GROUPS, extra=[*DEMO_OWN, *DISPLAY], out=DEMO_OUT)
@guarded
def demo(count: int, latency: float, files: bool, **params: Any) -> None:
    """Build a small WebDataset of COUNT resized images from an embedded local origin, and its report.

    The origin serves the images in fixtures/ on 127.0.0.1 (a random port) with a little latency, so no
    internet is needed. The dataset (64x64 jpg, 100 a shard; any image or output option you give wins)
    and OUT/report.html stay in OUT, a new temporary folder without -o; the last lines say where. With
    --files: plain files into a temporary folder removed afterwards, and the throughput.

    \b
    Examples:
      downloader demo
      downloader demo --files -n 2000 -c 128 --backend threads --latency 0.05
    """
    import tempfile

    from ..app.run import demo as run_demo

    settings = split_params(params)
    if not files:
        from ..showcase import dataset_demo

        ui = make_ui(params["quiet"], params["progress"], params["progress_interval"])
        made = dataset_demo(settings, explicit_settings(), count, latency, ui)
        finish(made.stats, params["quiet"], made.out, made.closing())  # exits
        return
    kept = settings["out"] if isinstance(settings["out"], Path) else None  # -o: the summary names it
    with tempfile.TemporaryDirectory(prefix="downloader-demo-") as tmp:
        settings["out"] = kept or Path(tmp)
        ui = make_ui(params["quiet"], params["progress"], params["progress_interval"])
        stats = run_demo(RunSpec.from_options(**settings), count, latency, ui)
    finish(stats, params["quiet"], kept)


@click.command(cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080, show_default=True)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="Seconds before each answer.",
)
@click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto")
@click.option("--debug", is_flag=True)
@guarded
def origin(host: str, port: int, latency: float, loop: str, debug: bool) -> None:
    """Serve the fixture images on HOST:PORT until interrupted (a local origin for trials).

    GET /img/<anything>/<name> answers with the fixture <name> (image-00.jpg ... from fixtures/); the
    <anything> part lets a list hold many distinct URLs of the same few images. Any other path is a 404.

    \b
    Examples:
      downloader origin --port 8080 &
      seq 100 | sed 's|.*|http://127.0.0.1:8080/img/&/image-00.jpg|' > urls.txt
      downloader fetch urls.txt -o out/
    """
    from ..loop import run_loop
    from ..origin import Origin, serve_forever

    served = Origin(latency=latency, host=host, port=port)
    names = ", ".join(sorted(served.images)[:3]) + (", …" if len(served.images) > 3 else "")
    click.echo(
        f"serving {len(served.images)} images ({names}) as http://{host}:{port}/img/<anything>/<name>",
        err=True,
    )
    run_loop(serve_forever(served), loop)
