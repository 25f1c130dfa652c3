"""Real components for the integration tests: PostgreSQL (embedded through
pgserver, and the machine's server at 127.0.0.1:5432), the Cyrus upstream
started by scripts/cyrus-upstream.sh, and the gateway itself under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[1]
CYRUS_DIRS: dict[str, Path] = {}  # upstream URL -> its state directory (LMTP socket, adduser)
# Radicale's users file (htpasswd, plain): tests/gateway/helpers.new_user adds every new user to it.
RADICALE_USERS = Path(tempfile.gettempdir()) / f"eas-radicale-users-{os.getpid()}"
SERVER_URL = os.environ.get("EAS_TEST_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_DATABASE = "eas_gateway_test"


def free_port(run: int = 1) -> int:
    """A free TCP port on 127.0.0.1 whose ``run - 1`` successors are free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for above in range(1, run):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + above))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no {run} free ports in a row")


@pytest.fixture(scope="session")
def cyrus() -> Iterator[str]:
    """Base URL of a private Cyrus with users alice@example.com and bob@example.com."""
    # Not under pytest's tmp_path: Cyrus runs as user cyrus and must reach its directory.
    state = Path(tempfile.mkdtemp(prefix="eas-cyrus-"))
    state.chmod(0o755)
    port = free_port(run=3)  # HTTP, IMAP, SMTP relay (scripts/cyrus-upstream.sh)
    script = ROOT / "scripts" / "cyrus-upstream.sh"
    subprocess.run(["bash", str(script), "start", str(state), str(port)], check=True, timeout=900)
    url = f"http://127.0.0.1:{port}"
    CYRUS_DIRS[url] = state
    yield url
    subprocess.run(["bash", str(script), "stop", str(state)], check=False, timeout=60)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def radicale() -> Iterator[str]:
    """Base URL of a Radicale (PyPI) CalDAV/CardDAV server, the second DAV upstream:
    users and passwords as on Cyrus (htpasswd, plain), rights owner_only."""
    state = Path(tempfile.mkdtemp(prefix="eas-radicale-"))
    RADICALE_USERS.write_text("alice@example.com:alice\nbob@example.com:bob\n")
    port = free_port()
    config = state / "config"
    config.write_text(f"""[server]
hosts = 127.0.0.1:{port}
[auth]
type = htpasswd
htpasswd_filename = {RADICALE_USERS}
htpasswd_encryption = plain
[storage]
filesystem_folder = {state / "collections"}
[rights]
type = owner_only
[logging]
level = warning
""")
    log = (state / "radicale.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Radicale did not start: {(state / 'radicale.log').read_text()}") from exc
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    log.close()
    RADICALE_USERS.unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(params=["cyrus", "radicale"])
def pim(request: pytest.FixtureRequest, database_url: str) -> Iterator[RunningGateway]:
    """The gateway with contacts and calendars from Cyrus' CalDAV/CardDAV, and from Radicale.
    Paired with the databases (see pytest_collection_modifyitems): Cyrus on the embedded
    PostgreSQL, Radicale on the machine's server — every DAV test runs on both DAV servers
    and both databases, without the four-fold product."""
    yield request.getfixturevalue("gateway" if request.param == "cyrus" else "gateway_radicale")


PIM_PAIRS = {("embedded", "cyrus"), ("server", "radicale")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "pim" in params and "database_url" in params and (params["database_url"], params["pim"]) not in PIM_PAIRS:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def fresh_server_database(name: str = TEST_DATABASE) -> str:
    """An empty database ``name`` on the machine's PostgreSQL server; its URL."""
    async def create() -> None:
        conn = await asyncpg.connect(SERVER_URL)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return SERVER_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session", params=["embedded", "server"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database: embedded PostgreSQL (pgserver), or the machine's server."""
    if request.param == "server":
        return fresh_server_database()
    from usm.database import embedded_url

    return embedded_url(tmp_path_factory.mktemp("embedded-pg"))


@pytest.fixture(autouse=True)
def responses_fit_their_version() -> Iterator[None]:
    """Every response any test makes a gateway of this process produce is
    walked against the version table (eas_gateway/versions.py): a test whose
    responses carried an element newer (or older) than the phone's protocol
    version fails, naming the element."""
    from eas_gateway import versions

    before = versions.dropped.copy()
    yield
    newly = versions.dropped - before
    assert not newly, f"responses carried elements their protocol version does not have: {dict(newly)}"


@dataclass
class RunningGateway:
    url: str
    upstream: str
    database_url: str
    dav: str = ""  # the CalDAV/CardDAV server when it is not the upstream

    @property
    def dav_url(self) -> str:
        return self.dav or self.upstream

    @property
    def cyrus_dir(self) -> Path:
        return CYRUS_DIRS[self.upstream]

    @property
    def endpoint(self) -> str:
        return self.url + "/Microsoft-Server-ActiveSync"


@pytest.fixture(scope="session")
def gateway(cyrus: str, database_url: str) -> Iterator[RunningGateway]:
    """The gateway under uvicorn in a thread, on the real upstream and database."""
    with running_gateway(cyrus, database_url, poll_seconds=0.5, dav_poll_seconds=0.5) as gw:
        yield gw


@pytest.fixture(scope="session")
def gateway_radicale(cyrus: str, radicale: str, database_url: str) -> Iterator[RunningGateway]:
    """The gateway with mail from Cyrus and contacts and calendars from Radicale."""
    with running_gateway(cyrus, database_url, poll_seconds=0.5, dav_poll_seconds=0.5,
                         dav_upstream=radicale) as gw:
        gw.dav = radicale
        yield gw


@contextlib.contextmanager
def running_gateway(cyrus: str, database_url: str, *, upstream: object = None, dav: object = None,
                    **settings: object) -> Iterator[RunningGateway]:
    """A gateway process's worth of service (own pool, own push hub) under uvicorn in a thread.
    ``upstream``: a driver to use instead of the JMAP one (e.g. one that fails on purpose);
    ``dav``: a DAV store instead of the server's (usm.upstream.memory.MemoryDav)."""
    import uvicorn

    from eas_gateway.app import create_app
    from eas_gateway.config import Settings
    from eas_gateway.server import GatewayServer, gateway_of, protocol

    port = free_port()
    config = Settings(upstream=cyrus, database_url=database_url, port=port, **settings)  # type: ignore[arg-type]
    app = create_app(config, upstream=upstream, dav=dav)  # type: ignore[arg-type]
    server = GatewayServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                          timeout_graceful_shutdown=5, proxy_headers=False,  # as eas-gateway serve
                                          http=protocol(config.header_timeout),
                                          limit_concurrency=config.max_connections or None),
                           gateway_of(app))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield RunningGateway(f"http://127.0.0.1:{port}", cyrus, database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        if thread.is_alive():
            raise RuntimeError("the gateway did not stop within 60 s")
