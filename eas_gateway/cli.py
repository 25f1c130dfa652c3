"""eas-gateway command line: serve, db upgrade, admin."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import fields
from pathlib import Path

from eas_gateway.admin import cli as admin_cli
from eas_gateway.config import Settings
from eas_gateway.observability import logs
from eas_gateway.workers import Slot

_SETTINGS = {f.name for f in fields(Settings)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="eas-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway (every option also as EAS_<OPTION>)")
    _common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes accepting on the port (default 1)")
    serve.add_argument("--upstream", help="base URL of the groupware server (JMAP discovery)")
    serve.add_argument("--dav-upstream", dest="dav_upstream",
                       help="base URL of the CalDAV/CardDAV server (default: --upstream; 'none': mail only)")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    _common(db_sub.add_parser("upgrade", help="apply the migrations in sql/"))
    admin_cli.add_parser(sub, _common)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in _SETTINGS}
    settings = Settings.from_env(**overrides)
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        _serve(settings)
    elif args.command == "admin":
        raise SystemExit(asyncio.run(admin_cli.run(args, _database_url(settings))))
    else:
        asyncio.run(_upgrade(settings))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL; default: embedded server in the state dir")
    parser.add_argument("--state-dir", type=Path, help="directory for the embedded database (default ./var)")


def _serve(settings: Settings) -> None:
    if settings.workers > 1:
        from eas_gateway.workers import supervise

        supervise(settings, settings.workers, _worker)
    else:
        _worker(settings, None)


def _worker(settings: Settings, slot: Slot | None) -> None:
    """One gateway process; ``slot``: one of several (eas_gateway.workers), on its own socket
    of the port."""
    from eas_gateway.app import create_app
    from eas_gateway.server import serve
    from eas_gateway.workers import listening_socket

    sock = None
    if slot is not None:
        logs.configure(settings.log_level, settings.log_format)  # a new process (spawned)
        sock = listening_socket(settings.host, settings.port)
    # Pings hold a request for up to 3540 s (MS-ASCMD 2.2.3.79): no keep-alive cut-off below that.
    # On shutdown, held Pings are answered at once (eas_gateway.server); other requests get 10 s.
    # Forwarding headers are handled by the app itself (EAS_TRUSTED_PROXIES), not by uvicorn's
    # default, which would believe 127.0.0.1.
    serve(create_app(settings, worker=slot), host=settings.host, port=settings.port, timeout_keep_alive=3600,
          timeout_graceful_shutdown=10, log_level=settings.log_level.lower(), access_log=False,
          proxy_headers=False, log_config=None, head_seconds=settings.header_timeout,
          limit_concurrency=settings.max_connections or None, sockets=[sock] if sock is not None else None)


async def _upgrade(settings: Settings) -> None:
    from usm import database

    pool = await database.connect(_database_url(settings), min_size=1, max_size=1)
    await pool.close()
    logging.getLogger("eas_gateway").info("database schema is up to date")


def _database_url(settings: Settings) -> str:
    from usm import database

    return settings.database_url or database.embedded_url(settings.state_dir)


if __name__ == "__main__":
    main()
