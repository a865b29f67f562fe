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
import sys
from concurrent.futures import ThreadPoolExecutor

import requests
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
    list_file, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(list_file) as lines:
        todo = [line.strip() for line in lines if line.strip()]
    main(todo, out_dir, int(sys.argv[3]) if len(sys.argv) > 3 else 64)
