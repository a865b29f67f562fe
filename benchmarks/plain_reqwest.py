"""The ceiling for the ``reqwest`` backend: a plain pyreqwest + uvloop loop with none of the engine's work.

N workers take URLs from one list, GET each with one pyreqwest ``Client`` (Rust reqwest and hyper on their
own tokio thread), read the whole body and write it to ``OUT/<basename>`` in the loop. No checks, no
hashes, no ``.part`` files, no manifest, no retries: what is left is pyreqwest's own cost per request and
the system calls every tool pays. Run it beside the project on the team's yardstick:

    ../shared/bench/peers.py small --project . \\
        --cmd "reqwest-plain=$PWD/.venv/bin/python $PWD/benchmarks/plain_reqwest.py {list} {out} {conc}"
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import uvloop
from plain_args import plain_args
from pyreqwest.client import Client, ClientBuilder


async def worker(client: Client, urls: Iterator[str], out: str) -> None:
    for url in urls:
        resp = await client.get(url).build().send()
        body = await resp.bytes()
        # a blocking write in the loop, on purpose: the cheapest way there is for a small file
        with open(os.path.join(out, url.rsplit("/", 1)[-1]), "wb") as fh:  # noqa: ASYNC230
            fh.write(body)


async def main(urls: Iterator[str], out: str, concurrency: int) -> None:
    builder = ClientBuilder().max_connections(concurrency).gzip(False).brotli(False).zstd(False)
    async with builder.deflate(False).build() as client:
        await asyncio.gather(*(worker(client, urls, out) for _ in range(concurrency)))


if __name__ == "__main__":
    urls, out_dir, concurrency = plain_args()
    uvloop.run(main(iter(urls), out_dir, concurrency))
