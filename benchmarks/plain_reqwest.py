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
import sys
from collections.abc import Iterator

import uvloop
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
    list_file, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(list_file) as lines:
        todo = iter([line.strip() for line in lines if line.strip()])
    uvloop.run(main(todo, out_dir, int(sys.argv[3]) if len(sys.argv) > 3 else 64))
