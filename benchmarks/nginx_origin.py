"""The benchmarks' origin: nginx on 127.0.0.1 serving one body for every path, so the origin is never the
bottleneck; and the peak RSS that ``/usr/bin/time -v`` reports. Needs nginx (``apt-get install
nginx-light``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONF = """
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {run}; proxy_temp_path {run}; fastcgi_temp_path {run};
  uwsgi_temp_path {run}; scgi_temp_path {run};
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ root {run}; try_files {target} =404; default_type {ctype}; }}
  }}
}}
"""


@contextmanager
def serving(
    body: bytes, name: str, ctype: str, port: int, files: dict[str, bytes] | None = None
) -> Iterator[Path]:
    """nginx answering every path on ``port`` with ``body``; or, with ``files``, each of them at ``/NAME``
    (``body`` unused). Yields its scratch folder (for the lists)."""
    run = Path(tempfile.mkdtemp(prefix="bench-origin-"))
    for file_name, data in (files or {name: body}).items():
        (run / file_name).write_bytes(data)
    target = "$uri" if files else f"/{name}"
    (run / "nginx.conf").write_text(CONF.format(run=run, port=port, target=target, ctype=ctype))
    subprocess.run(["nginx", "-c", str(run / "nginx.conf")], check=True)
    try:
        yield run
    finally:
        subprocess.run(["nginx", "-c", str(run / "nginx.conf"), "-s", "stop"], check=False)
        shutil.rmtree(run, ignore_errors=True)


def url_list(folder: Path, port: int, n: int, name: str = "urls.txt") -> Path:
    """A list of ``n`` distinct URLs on the origin at ``port`` (every path answers), written to ``folder``."""
    path = folder / name
    path.write_text("".join(f"http://127.0.0.1:{port}/i/{i}.jpg\n" for i in range(n)))
    return path


def peak_rss_mb(stderr: str) -> float:
    """``Maximum resident set size`` from ``/usr/bin/time -v``, in MB."""
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(match.group(1)) / 1024 if match else float("nan")
