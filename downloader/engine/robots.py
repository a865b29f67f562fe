"""``--robots-txt``: each origin's robots.txt, fetched once per run through the run's own backend and
shared by all of that origin's URLs (those that come while it is fetched wait for the one fetch).

What an answer means (RFC 9309 2.3.1, and where a batch tool must choose):

* 2xx: its rules (``robots.parse``), the first 500 KiB of it as the RFC allows;
* 4xx (404, 401, 403...): no rules, everything is allowed;
* a timeout: tried once more, then everything is allowed: a site too slow to answer for its robots.txt
  is slow, not saying no (and its images meet the same timeouts);
* 5xx or 429: tried once more, then the whole origin is disallowed for the run, as the RFC says
  (it allows a crawler to fall back to allowing after 30 days; a run does not last that long);
* no answer at all (DNS, connect, TLS, a cut-off body): tried once more, then none of the origin's URLs
  is requested either, and each fails with that error's own kind (``connect``...), not ``opted_out``:
  the site said nothing, and its images would have met the same failure;
* redirects are followed like any request's (``--max-redirects``); too many: no robots.txt, allowed.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from ..backends.base import PageReader
from ..errors import DownloadError, OptedOut, Timeout, http_error
from ..models import Job
from ..robotstxt import Rules, parse
from ..spec import RunSpec
from .hosts import Hosts

ROBOTS_LIMIT = 500 * 1024
"""Bytes of a robots.txt read; RFC 9309 asks a crawler to parse at least this much, the rest is unread."""
ROBOTS_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class Policy:
    """What an origin's robots.txt says for the run: its rules, or an error every URL of it fails with."""

    rules: Rules | None = None
    refusal: DownloadError | None = None


class RobotsCache:
    """One ``Policy`` per origin (scheme, host and port), fetched by the first URL that needs it."""

    def __init__(self, spec: RunSpec, reader: PageReader, hosts: Hosts) -> None:
        self.reader = reader
        self.hosts = hosts
        self.agent = spec.network.agent
        self.limit = spec.timeouts.timeout or spec.timeouts.deadline
        self.backoff = spec.retries.backoff
        self._known: dict[str, Policy | asyncio.Task[Policy]] = {}

    async def refusal(self, job: Job) -> DownloadError | None:
        """None when the origin's robots.txt lets ``job`` be requested; else the error of its row."""
        scheme, _, rest = job.key.partition("://")
        origin = f"{scheme}://{job.host}"
        policy = self._known.get(origin)
        if policy is None:
            policy = self._known[origin] = asyncio.create_task(self._load(origin, job.host))
        if isinstance(policy, asyncio.Task):
            policy = await asyncio.shield(policy)
            self._known[origin] = policy
        if policy.rules is None:
            return policy.refusal
        path = rest[rest.find("/") :] if "/" in rest else "/"
        rule = policy.rules.decide(path)
        if rule is None or rule.allow:
            return None
        return OptedOut(f"robots.txt {rule} for {policy.rules.agent}; not requested")

    async def _load(self, origin: str, host: str) -> Policy:
        url = f"{origin}/robots.txt"
        for attempt in range(1, ROBOTS_ATTEMPTS + 1):
            try:
                await self.hosts.admit(host)
                async with asyncio.timeout(self.limit):
                    page = await self.reader.read(url, ROBOTS_LIMIT)
            except TimeoutError:
                err: DownloadError = Timeout(f"{url} took over {self.limit:g} s")
            except DownloadError as exc:
                err = exc
            else:
                if page.status < 400:
                    return Policy(parse(page.body, self.agent))
                if page.status < 500 and page.status != 429:
                    return Policy(Rules([], "*"))
                err = http_error(page.status)
            if not err.retryable or attempt == ROBOTS_ATTEMPTS:
                break
            await asyncio.sleep(self.backoff * random.uniform(0.5, 1.5))
        return self._unavailable(url, err)

    def _unavailable(self, url: str, err: DownloadError) -> Policy:
        """The policy when ``url`` gave no rules: see the module's list."""
        if isinstance(err, Timeout) or err.kind == "redirect":
            return Policy(Rules([], "*"))
        if err.http_status is not None:
            return Policy(
                refusal=OptedOut(
                    f"{url} answered HTTP {err.http_status}: RFC 9309 reads that as disallowing the whole "
                    "site; not requested"
                )
            )
        refusal = type(err)(f"{url} could not be fetched ({err}); not requested")
        return Policy(refusal=refusal)

    async def close(self) -> None:
        """Cancel the fetches still running (the run stopped) and wait for them, before the backend
        closes."""
        running = [t for t in self._known.values() if isinstance(t, asyncio.Task) and not t.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
