"""`eas-gateway admin ...`: look after devices from the shell.

Each subcommand is one call of usm.admin or usm.access, printed as a table (or JSON with
--json). Errors name what was not found and exit with status 1. Every change is written
to the audit log (actor cli:<login>), which `admin audit` shows.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from usm import access, admin, database

LIST_COLUMNS = ("user_name", "device_id", "device_type", "protocol_version", "last_seen", "policy", "wipe",
                "user_agent")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = sub.add_parser("admin", help="look after devices (list, reset, wipe)")
    cmds = parser.add_subparsers(dest="admin_command", required=True)

    def command(name: str, help: str, *, user: bool = True, device: bool = True) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help)
        common(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        if user:
            p.add_argument("user", help="the user's name as the upstream knows it (e.g. alice@example.com)")
        if device:
            p.add_argument("device", help="the DeviceId the phone sends")
        parser: argparse.ArgumentParser = p
        return parser

    listing = command("devices", "list devices, of one user or all", user=False, device=False)
    listing.add_argument("user", nargs="?", help="only this user's devices")
    command("device", "one device with its folders and sync keys")
    wipe = command("wipe", "ask the device to wipe itself at its next request")
    wipe.add_argument("--account-only", action="store_true",
                      help="wipe only this account's data (EAS 16.1 AccountOnlyRemoteWipe)")
    command("cancel-wipe", "withdraw a wipe request not yet carried out")
    command("reset-device", "the device fetches its folders and items again")
    command("reset-user", "every device of the user fetches everything again", device=False)
    command("remove-device", "forget the device; it provisions and syncs again as new")
    resync = command("resync-folder", "the folder is synced again from scratch", device=False)
    resync.add_argument("folder", help="the folder's ServerId or name")
    resync.add_argument("--device", help="only on this device (default: all the user's devices)")
    trace = command("trace", "log the user's ActiveSync traffic in full, on every node, from now on",
                    device=False)
    trace.add_argument("--device", help="only this device (default: all the user's devices)")
    trace.add_argument("--minutes", type=float, default=60.0, help="for how long (default 60; 0 stops it)")
    command("traces", "the traces switched on", user=False, device=False)
    command("rules", "the device access rules", user=False, device=False)
    rule = command("rule-add", "a device access rule (first match decides: the user's before everyone's; "
                   "DeviceId before User-Agent before DeviceType)", user=False, device=False)
    rule.add_argument("field", choices=access.FIELDS)
    rule.add_argument("pattern", help="case-insensitive, * and ? as in shell globs, e.g. 'Apple-iPhone*'")
    rule.add_argument("access", choices=access.ACCESS_LEVELS)
    rule.add_argument("--user", help="only for this user (default: every user)")
    unrule = command("rule-remove", "remove a device access rule", user=False, device=False)
    unrule.add_argument("id", type=int)
    command("blocks", "the devices blocked now (sync loops, admins)", user=False, device=False)
    block = command("block", "refuse the device for a while")
    block.add_argument("--minutes", type=float, default=24 * 60, help="for how long (default a day)")
    block.add_argument("--reason", default="blocked by an admin")
    command("unblock", "let a blocked device in again")
    audit = command("audit", "what admins did, newest first", user=False, device=False)
    audit.add_argument("--limit", type=int, default=50)


async def run(args: argparse.Namespace, database_url: str) -> int:
    args.user_or_everyone = getattr(args, "user", None) or "every user"
    # Through database.connect: the schema (and so the reset functions) is brought up to date first.
    pool = await database.connect(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            result = await _ACTIONS[args.admin_command](conn, args)
    except (admin.AdminError, access.AccessError) as exc:
        print(f"eas-gateway admin {args.admin_command}: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    if args.json:
        print(json.dumps(result, default=_jsonable, indent=2))
    elif isinstance(result, str):
        print(result)
    return 0


async def _devices(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    rows = await admin.list_devices(conn, args.user)
    return rows if args.json else _table(rows, LIST_COLUMNS)


async def _device(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    device, folders = await admin.show_device(conn, args.user, args.device)
    failures = await admin.item_failures(conn, args.user, args.device)
    if args.json:
        return {"device": device, "folders": [f.__dict__ for f in folders],
                "item_failures": [f.__dict__ for f in failures]}
    lines = [f"{k}: {_text(v)}" for k, v in device.items()]
    lines += ["", _table([f.__dict__ for f in folders], ("server_id", "name", "folder_type", "sync_key", "items",
                                                          "pending", "listing"))]
    if failures:
        lines += ["", "Items not sent (loop protection):",
                  _table([f.__dict__ for f in failures], ("collection_id", "upstream_id", "failures", "skipped",
                                                           "last_error"))]
    return "\n".join(lines)


async def _mutate(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    change, message = _MUTATIONS[args.admin_command]
    async with conn.transaction():
        text = message.format(a=args, n=await change(conn, args))
        await access.audit(conn, f"cli:{getpass.getuser()}", args.admin_command, text)
    return {"done": text} if args.json else text


_Change = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[Any]]
_MUTATIONS: dict[str, tuple[_Change, str]] = {
    "wipe": (lambda c, a: admin.request_wipe(c, a.user, a.device, "account" if a.account_only else "device"),
             "wipe requested for {a.device} of {a.user}; it happens at the device's next request"),
    "cancel-wipe": (lambda c, a: admin.cancel_wipe(c, a.user, a.device),
                    "wipe request for {a.device} of {a.user} withdrawn"),
    "reset-device": (lambda c, a: admin.reset_device(c, a.user, a.device),
                     "sync state of {a.device} of {a.user} reset; it re-syncs at its next request"),
    "reset-user": (lambda c, a: admin.reset_user(c, a.user), "{n} device(s) of {a.user} reset"),
    "remove-device": (lambda c, a: admin.remove_device(c, a.user, a.device),
                      "device {a.device} of {a.user} removed"),
    "resync-folder": (lambda c, a: admin.resync_folder(c, a.user, a.folder, a.device),
                      "folder {a.folder} of {a.user} will be synced again on {n} device(s)"),
    "trace": (lambda c, a: admin.trace(c, a.user, a.device, a.minutes),
              "protocol trace of {a.user} set for {a.minutes:g} minutes (0: off)"),
    "rule-add": (lambda c, a: access.add_rule(c, a.field, a.pattern, a.access, a.user),
                 "rule {n}: {a.field} {a.pattern!r} -> {a.access} for {a.user_or_everyone}"),
    "rule-remove": (lambda c, a: access.remove_rule(c, a.id), "rule {a.id} removed"),
    "block": (lambda c, a: access.block(c, a.user, a.device, minutes=a.minutes, reason=a.reason),
              "device {a.device} of {a.user} blocked for {a.minutes:g} minutes: {a.reason}"),
    "unblock": (lambda c, a: access.unblock(c, a.user, a.device), "device {a.device} of {a.user} let in again"),
}
async def _traces(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    rows = await admin.traces(conn)
    return rows if args.json else _table(rows, ("user_name", "device_id", "until"))


async def _rules(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    rows = await access.rules(conn)
    return rows if args.json else _table(rows, ("id", "user_name", "field", "pattern", "access", "created_at"))


async def _blocks(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    rows = await access.blocks(conn)
    return rows if args.json else _table(rows, ("user_name", "device_id", "until", "reason"))


async def _audit(conn: asyncpg.Connection, args: argparse.Namespace) -> Any:
    rows = await access.audit_log(conn, args.limit)
    return rows if args.json else _table(rows, ("at", "actor", "action", "detail"))


_ACTIONS: dict[str, _Change] = {"devices": _devices, "device": _device, "traces": _traces, "rules": _rules,
                                "blocks": _blocks, "audit": _audit, **{name: _mutate for name in _MUTATIONS}}


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    if not rows:
        return "(none)"
    cells = [[_text(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    return str(value)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
