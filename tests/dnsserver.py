"""A real DNS server on loopback for the tests: asyncio, UDP and TCP, a name → addresses map, and on
request delays, dropped queries, SERVFAIL, NXDOMAIN and TTLs. It counts what it is asked."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class Name:
    """How the server answers one name."""

    addresses: list[str] = field(default_factory=list)
    ttl: int = 300
    delay: float = 0.0
    drop: int = 0
    """Queries to leave unanswered before answering (each A or AAAA query counts)."""
    servfail: int = 0
    """Queries to answer SERVFAIL before answering (-1: always)."""
    cycle: list[list[str]] | None = None
    """Answers given in turn, one per A query (a name that changes its mind: rebinding)."""


@dataclass
class DNSServer:
    names: dict[str, Name] = field(default_factory=dict)
    negative_ttl: int = 60
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_flight: set[str] = field(default_factory=set)
    max_in_flight: int = 0
    truncated: int = 0
    port: int = 0
    _closers: list[Any] = field(default_factory=list)

    def asked(self, name: str, rdtype: str = "A") -> int:
        return self.queries[(name, rdtype)]

    async def answer(self, wire: bytes, udp: bool = False) -> bytes | None:
        """The reply to one query, or None to drop it; over UDP, one too large for 512 bytes is sent
        truncated (no records, TC set), so the client asks again over TCP."""
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        rule = self.names.get(name)
        self.in_flight.add(name)
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        try:
            if rule is not None and rule.delay:
                await asyncio.sleep(rule.delay)
            if rule is not None and rule.drop > 0:
                rule.drop -= 1
                return None
            reply = self._reply(query, name, rdtype, rule)
            if udp and len(reply.to_wire()) > 512:
                self.truncated += 1
                reply.answer.clear()
                reply.flags |= dns.flags.TC
            return reply.to_wire()
        finally:
            self.in_flight.discard(name)

    def _reply(
        self, query: dns.message.Message, name: str, rdtype: str, rule: Name | None
    ) -> dns.message.Message:
        reply = dns.message.make_response(query)
        if rule is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            soa = f"test. hostmaster.test. 1 60 60 60 {self.negative_ttl}"
            reply.authority.append(dns.rrset.from_text("test.", self.negative_ttl, "IN", "SOA", soa))
            return reply
        if rule.servfail:
            rule.servfail -= rule.servfail > 0
            reply.set_rcode(dns.rcode.SERVFAIL)
            return reply
        addresses = rule.addresses
        if rule.cycle and rdtype == "A":
            addresses = rule.cycle[(self.asked(name) - 1) % len(rule.cycle)]
        family = [a for a in addresses if (":" in a) == (rdtype == "AAAA")]
        if family and rdtype in ("A", "AAAA"):
            reply.answer.append(dns.rrset.from_text(name + ".", rule.ttl, "IN", rdtype, *family))
        return reply

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                task = loop.create_task(server.answer(data, udp=True))
                task.add_done_callback(lambda t: t.result() and self.transport.sendto(t.result(), addr))

        for _ in range(20):  # a port free for UDP may be taken for TCP: try another
            transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            self.port = transport.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(self._tcp, "127.0.0.1", self.port)
            except OSError:
                transport.close()
                continue
            self._closers += [transport, tcp]
            return self.port
        raise OSError("no port free for both UDP and TCP")

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = int.from_bytes(await reader.readexactly(2), "big")
            reply = await self.answer(await reader.readexactly(size))
            if reply is not None:
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        for closer in self._closers:
            closer.close()
