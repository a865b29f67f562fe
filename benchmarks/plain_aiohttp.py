"""The ceiling for the ``aiohttp`` backend: a plain aiohttp + uvloop loop with none of the engine's work.

N workers take URLs from one list, GET each with one ``ClientSession`` and write the body to
``OUT/<basename>`` in the loop. No checks, no hashes, no ``.part`` files, no manifest, no retries: what
is left is aiohttp's own cost per request and the system calls every tool pays. Run it beside the
project on the team's yardstick to see how close the backend comes to its HTTP client:

    ../shared/bench/peers.py small --project . \\
        --cmd "aiohttp-plain=$PWD/.venv/bin/python $PWD/benchmarks/plain_aiohttp.py {list} {out} {conc}"
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import aiohttp
import uvloop
from plain_args import plain_args


async def worker(session: aiohttp.ClientSession, urls: Iterator[str], out: str) -> None:
    for url in urls:
        async with session.get(url) as resp:
            body = await resp.read()
        # a blocking write in the loop, on purpose: the cheapest way there is for a small file
        with open(os.path.join(out, url.rsplit("/", 1)[-1]), "wb") as fh:  # noqa: ASYNC230
            fh.write(body)


async def main(urls: Iterator[str], out: str, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=jar) as session:
        await asyncio.gather(*(worker(session, urls, out) for _ in range(concurrency)))


if __name__ == "__main__":
    urls, out_dir, concurrency = plain_args()
    uvloop.run(main(iter(urls), out_dir, concurrency))
