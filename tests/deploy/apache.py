"""A real Apache 2.4 (Debian's apache2) in front of test gateways, configured
with the files of deploy/apache/ as shipped, TLS with a certificate made here."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

DEPLOY = ROOT / "deploy" / "apache"
MODULES = Path("/usr/lib/apache2/modules")
NEEDED = ("mpm_event", "authz_core", "ssl", "socache_shmcb", "headers", "proxy", "proxy_http",
          "proxy_balancer", "slotmem_shm", "lbmethod_byrequests")
# Stands in for Apache's default Timeout (60 s; Debian's apache2.conf: 300 s),
# shorter than the test Pings, so that only the vhost's own settings can keep them alive.
GLOBAL_TIMEOUT = 2


@dataclass
class RunningApache:
    url: str  # https://localhost:PORT
    certificate: Path
    error_log: Path

    @property
    def host(self) -> str:
        return self.url.removeprefix("https://")


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (and 127.0.0.1), made with openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.contextmanager
def apache(directory: Path, backends: list[str], *,
           vhost_edits: list[tuple[str, str]] = ()) -> Iterator[RunningApache]:
    """Apache on a free port proxying to ``backends`` (one: eas-gateway.conf; several:
    eas-gateway-balancer.conf too). ``vhost_edits``: (text, replacement) applied to
    the shipped vhost, for tests that show what a line is for."""
    if shutil.which("apache2") is None:
        pytest.fail("apache2 is not installed (scripts/test.sh installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = certificate(directory)
    port = free_port()
    vhost = (DEPLOY / "eas-gateway.conf").read_text()
    for old, new in vhost_edits:
        assert old in vhost, old
        vhost = vhost.replace(old, new)
    (directory / "eas-gateway.conf").write_text(vhost)
    lines = [f"ServerRoot {directory}", f"DefaultRuntimeDir {directory}", f"PidFile {directory}/httpd.pid",
             f"ErrorLog {directory}/error.log", "LogLevel warn", "ServerName localhost",
             "User www-data", "Group www-data", f"Listen 127.0.0.1:{port}", f"Timeout {GLOBAL_TIMEOUT}"]
    lines += [f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in NEEDED]
    lines += [f"Define EAS_LISTEN {port}", "Define EAS_SERVER_NAME localhost",
              f"Define EAS_CERTIFICATE {cert}", f"Define EAS_CERTIFICATE_KEY {key}"]
    if len(backends) == 1:
        lines.append(f"Define EAS_BACKEND {backends[0]}")
    else:
        lines += [f"Define EAS_NODE_{n} {url}" for n, url in enumerate(backends, 1)]
        lines.append(f"Include {DEPLOY / 'eas-gateway-balancer.conf'}")
    lines.append(f"Include {directory / 'eas-gateway.conf'}")
    conf = directory / "httpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    checked = subprocess.run(["apache2", "-f", str(conf), "-t"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    with open(directory / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(["apache2", "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    try:
        _wait_for(port, process, directory)
        yield RunningApache(f"https://localhost:{port}", cert, directory / "error.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"apache2 exited: {(directory / 'stderr.log').read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("apache2 did not start listening")
