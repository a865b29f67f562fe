"""The ceiling for the ``threads`` backend: a plain thread pool doing ``requests`` GETs, nothing else.

N threads share one ``requests.Session`` (pool of N connections), GET each URL and write the body to
``OUT/<basename>``. No checks, no hashes, no ``.part`` files, no manifest, no retries, no event loop:
what is left is requests' own cost per request, the system calls, and the interpreter lock passed
between the threads. Run it beside the project on the team's yardstick:

    ../shared/bench/peers.py small --project . \\
        --cmd "threads-plain=$PWD/.venv/bin/python $PWD/benchmarks/plain_threads.py {list} {out} {conc}"
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import requests
from plain_args import plain_args
from requests.adapters import HTTPAdapter


def main(urls: list[str], out: str, concurrency: int) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency))

    def one(url: str) -> None:
        body = session.get(url, timeout=30).content
        with open(os.path.join(out, url.rsplit("/", 1)[-1]), "wb") as fh:
            fh.write(body)

    with ThreadPoolExecutor(concurrency) as pool:
        for done in pool.map(one, urls):
            del done


if __name__ == "__main__":
    urls, out_dir, concurrency = plain_args()
    main(urls, out_dir, concurrency)
