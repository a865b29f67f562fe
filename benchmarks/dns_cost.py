"""What name resolution costs a run: the gate's admission of a URL whose host is cached (every URL but
the first of each host pays it), and the CPU of a first lookup through ``--dns-server`` (dnspython),
against the tests' DNS server on loopback.

    PYTHONPATH=. .venv/bin/python benchmarks/dns_cost.py [ADMISSIONS] [HOSTS]
"""

from __future__ import annotations

import asyncio
import sys
import time

from downloader.backends.gate import Gate
from downloader.spec import Network
from tests.dnsserver import DNSServer, Name


async def admissions(n: int) -> dict[str, float]:
    """Microseconds per admission of a cached host, for an address and for a name."""
    gate, found = Gate(Network()), {}
    for label, url in (
        ("address", "http://127.0.0.1:8080/images/cat-000123.jpg"),
        ("localhost", "http://localhost:8080/images/cat-000123.jpg"),
    ):
        await gate.admit(url)
        t0 = time.perf_counter()
        for _ in range(n):
            gate.now(url)
        found[label] = (time.perf_counter() - t0) / n * 1e6
    gate.close()
    return found


async def lookups(hosts: int) -> float:
    """Milliseconds of this process's CPU per first lookup (A and AAAA) through ``--dns-server``."""
    server = DNSServer(names={f"h{i}.test": Name(["127.0.0.2"]) for i in range(hosts)})
    port = await server.start()
    gate = Gate(Network(dns_servers=(("127.0.0.1", port),), dns_lookups=16))
    t0 = time.process_time()
    await asyncio.gather(*(gate.resolver.lookup(f"h{i}.test") for i in range(hosts)))
    cpu = time.process_time() - t0
    await server.stop()
    return cpu / hosts * 1e3  # the server's work is in this process too: an upper bound


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    for label, us in asyncio.run(admissions(n)).items():
        print(f"admission of a cached host ({label}): {us:.2f} us")
    print(f"first lookup via --dns-server, client and server CPU: {asyncio.run(lookups(hosts)):.2f} ms/host")


if __name__ == "__main__":
    main()
