"""The admin web page (/admin on the gateway's own port; deploy/apache does not proxy it).

Its own authentication: one password (EAS_ADMIN_PASSWORD; empty turns the
page off, 404). A login sets a signed session cookie (a JWT, HS256, key
derived from the password, so it holds on every node and dies when the
password changes), HttpOnly, SameSite=Strict, Secure whenever the request came
over TLS (also through a trusted proxy); every change is a POST that carries the
session's CSRF token. Signing out (a POST with that token too) ends the session
on every node (usm.admin.end_session): a copied cookie is worthless afterwards.
Sign-in failures from an address slow its further attempts down (growing waits)
rather than locking it out: the right password, typed by a colleague behind the
same address, still gets in, and a guesser gets one try per wait. Each action is
a call of usm.admin, the same as `eas-gateway admin` and sql/admin/*.sql, and is
logged with who did it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from usm import access, admin

if TYPE_CHECKING:
    from eas_gateway.app import Gateway

log = logging.getLogger(__name__)

COOKIE = "eas_admin"
SESSION_SECONDS = 8 * 3600
MAX_FORM_BYTES = 16 * 1024
ACTIONS: dict[str, tuple[str, Callable[[Any, str, str], Awaitable[Any]]]] = {
    "wipe": ("Wipe the device", lambda c, u, d: admin.request_wipe(c, u, d, "device")),
    "account-wipe": ("Wipe only this account", lambda c, u, d: admin.request_wipe(c, u, d, "account")),
    "cancel-wipe": ("Cancel the wipe", admin.cancel_wipe),
    "reset": ("Reset sync state", admin.reset_device),
    "remove": ("Remove the device", admin.remove_device),
    "block": ("Block for a day", lambda c, u, d: access.block(c, u, d, minutes=24 * 60, reason="blocked by an admin")),
    "unblock": ("Let in again", access.unblock),
}


class Throttle:
    """Sign-in failures per client address (this node's memory): after ``limit`` within
    ``window`` seconds, each further attempt from that address waits first, twice as long
    per failure (up to ``longest`` seconds), and is then checked like any other."""

    def __init__(self, limit: int = 5, window: float = 300.0, longest: float = 30.0) -> None:
        self.limit, self.window, self.longest = limit, window, longest
        self._failures: dict[str, list[float]] = {}

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # an address flood must not grow memory without bound
            self._failures.clear()
        self._failures.setdefault(client, []).append(time.monotonic())

    def wait(self, client: str) -> float:
        """Seconds the next attempt from ``client`` waits (0: none)."""
        recent = [t for t in self._failures.get(client, []) if t > time.monotonic() - self.window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        over = len(recent) - self.limit
        return 0.0 if over < 0 else min(float(2 ** over), self.longest)


def routes(gateway: Gateway) -> list[Route]:
    throttle = Throttle()

    async def page(request: Request) -> Response:
        session = await _session(gateway, request)
        if session is None:
            return RedirectResponse("/admin/login", status_code=303)
        return await _devices_page(gateway, request, session)

    async def login(request: Request) -> Response:
        if not gateway.settings.admin_password:
            return Response("Not Found", status_code=404)
        if request.method == "GET":
            return _html("Sign in", _LOGIN_FORM)
        client = request.client.host if request.client else "-"
        wait = throttle.wait(client)
        if wait:
            log.warning("admin page: sign-in from %s after many failures: waiting %.0f s first", client, wait)
            await asyncio.sleep(wait)
        form = await _form(request)
        if form is None or not hmac.compare_digest(form.get("password", "").encode(),
                                                    gateway.settings.admin_password.encode()):
            throttle.failed(client)
            log.warning("admin page: failed sign-in from %s", client)
            if wait:
                return _html("Sign in", '<p class="error">Wrong password; wait before the next try.</p>',
                             status=429, headers={"Retry-After": str(int(throttle.wait(client)))})
            return _html("Sign in", '<p class="error">Wrong password.</p>' + _LOGIN_FORM, status=401)
        token = jwt.encode({"sub": "admin", "exp": int(time.time()) + SESSION_SECONDS,
                            "jti": secrets.token_urlsafe(16), "csrf": secrets.token_urlsafe(16)},
                           _key(gateway), algorithm="HS256")
        log.info("admin page: signed in from %s", request.client.host if request.client else "-")
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/admin")
        return response

    async def logout(request: Request) -> Response:
        session = await _session(gateway, request)
        form = await _form(request)
        if session is None or form is None or not hmac.compare_digest(form.get("csrf", ""), session["csrf"]):
            log.warning("admin page: refused a sign-out without a valid session and CSRF token")
            return Response("Forbidden\n", status_code=403)
        assert gateway.db is not None
        async with gateway.db.acquire() as conn:
            await admin.end_session(conn, session["jti"], datetime.fromtimestamp(session["exp"], UTC))
        log.info("admin page: signed out")
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(COOKIE, path="/admin")
        return response

    async def act(request: Request) -> Response:
        session = await _session(gateway, request)
        form = await _form(request)
        if session is None or form is None or not hmac.compare_digest(form.get("csrf", ""), session["csrf"]):
            log.warning("admin page: refused a POST without a valid session and CSRF token")
            return Response("Forbidden\n", status_code=403)
        user, device, action = form.get("user", ""), form.get("device", ""), form.get("action", "")
        if action not in ACTIONS:
            return Response(f"unknown action {action!r}\n", status_code=400)
        label, call = ACTIONS[action]
        assert gateway.db is not None
        try:
            async with gateway.db.acquire() as conn, conn.transaction():
                await call(conn, user, device)
                await access.audit(conn, "web:admin", action, f"{label}: device {device} of {user}")
            if gateway.access is not None:
                gateway.access.forget()
            message = f"{label}: done for {device}."
            log.warning("admin page: %s for device %s of %s", label, device, user)
        except (admin.AdminError, access.AccessError) as exc:
            message = f"{label} failed: {exc}"
            log.info("admin page: %s", message)
        return RedirectResponse("/admin?" + urlencode({"user": user, "message": message}), status_code=303)

    return [Route("/admin", page), Route("/admin/login", login, methods=["GET", "POST"]),
            Route("/admin/logout", logout, methods=["POST"]), Route("/admin/action", act, methods=["POST"])]


async def _devices_page(gateway: Gateway, request: Request, session: dict[str, Any]) -> Response:
    user = request.query_params.get("user", "").strip()
    assert gateway.db is not None
    async with gateway.db.acquire() as conn:
        devices = await admin.list_devices(conn, user or None)
        blocked = await access.blocks(conn)
        rules = await access.rules(conn)
        audit = await access.audit_log(conn, 20)
    body = [f'<form method="get" action="/admin"><label>User <input name="user" value="{escape(user)}"></label>'
            ' <button>Show devices</button></form>']
    message = request.query_params.get("message")
    if message:
        body.append(f'<p class="message" role="status">{escape(message)}</p>')
    if not devices:
        body.append(f"<p>No devices{' for ' + escape(user) if user else ''}.</p>")
    else:
        body.append("<table><tr><th>User</th><th>Device</th><th>Type</th><th>EAS</th><th>Last request</th>"
                    "<th>Policy</th><th>Wipe</th><th>Folders synced</th><th></th></tr>")
        body += [_device_row(d, session["csrf"]) for d in devices]
        body.append("</table>")
    body.append(_section("Blocked devices", ("User", "Device", "Until", "Why"),
                         [(b["user_name"], b["device_id"], _when(b["until"]), b["reason"]) for b in blocked],
                         unblock=session["csrf"]))
    body.append(_section("Device access rules (eas-gateway admin rule-add)", ("Id", "User", "Field", "Pattern",
                                                                               "Access"),
                         [(r["id"], r["user_name"] or "everyone", r["field"], r["pattern"], r["access"])
                          for r in rules]))
    body.append(_section("What admins did", ("When", "Who", "Action", "What"),
                         [(_when(a["at"]), a["actor"], a["action"], a["detail"]) for a in audit]))
    body.append('<form method="post" action="/admin/logout">'
                f'<input type="hidden" name="csrf" value="{escape(session["csrf"])}"><button>Sign out</button></form>')
    return _html(f"Devices{' of ' + user if user else ''}", "\n".join(body))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _section(title: str, headings: tuple[str, ...], rows: list[tuple[Any, ...]], *, unblock: str = "") -> str:
    """A titled table; with ``unblock`` (the CSRF token) each row, a blocked device, gets its button."""
    if not rows:
        return f"<h2>{escape(title)}</h2><p>None.</p>"
    out = [f"<h2>{escape(title)}</h2><table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headings) +
           ("<th></th>" if unblock else "") + "</tr>"]
    for row in rows:
        cells = "".join(f"<td>{escape(str(c))}</td>" for c in row)
        if unblock:
            cells += ('<td><form method="post" action="/admin/action" class="inline" data-confirm="unblock">'
                      f'<input type="hidden" name="csrf" value="{escape(unblock)}">'
                      f'<input type="hidden" name="user" value="{escape(str(row[0]))}">'
                      f'<input type="hidden" name="device" value="{escape(str(row[1]))}">'
                      f'<button name="action" value="unblock">{escape(ACTIONS["unblock"][0])}</button></form></td>')
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def _device_row(d: dict[str, Any], csrf: str) -> str:
    actions = ["reset", "block", "remove"]
    if d["wipe"]:
        actions.insert(0, "cancel-wipe")
    else:
        actions.insert(0, "wipe")
        if d["protocol_version"] == "16.1":  # AccountOnlyRemoteWipe exists from 16.1 (MS-ASPROV 2.2.2.1)
            actions.insert(1, "account-wipe")
    buttons = "".join(
        f'<form method="post" action="/admin/action" class="inline" data-confirm="{a}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="user" value="{escape(d["user_name"])}">'
        f'<input type="hidden" name="device" value="{escape(d["device_id"])}">'
        f'<button name="action" value="{a}">{escape(ACTIONS[a][0])}</button></form>' for a in actions)
    last = d["last_seen"].strftime("%Y-%m-%d %H:%M:%S UTC") if d["last_seen"] else "-"
    cells = [d["user_name"], d["device_id"], d["device_type"], d["protocol_version"] or "-", last, d["policy"],
             d["wipe"] or "-", str(d["synced_folders"])]
    return ("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + f"<td>{buttons}</td></tr>")


async def _session(gateway: Gateway, request: Request) -> dict[str, Any] | None:
    token = request.cookies.get(COOKIE)
    if not gateway.settings.admin_password or not token:
        return None
    try:
        claims = jwt.decode(token, _key(gateway), algorithms=["HS256"], options={"require": ["exp", "sub", "jti"]})
    except jwt.InvalidTokenError:
        return None
    if claims.get("sub") != "admin" or not isinstance(claims.get("csrf"), str) or not isinstance(claims["jti"], str):
        return None
    assert gateway.db is not None
    async with gateway.db.acquire() as conn:
        if await admin.session_ended(conn, claims["jti"]):
            return None  # signed out: on every node
    return claims


def _key(gateway: Gateway) -> bytes:
    return hashlib.sha256(b"eas-gateway admin session\0" + gateway.settings.admin_password.encode()).digest()


async def _form(request: Request) -> dict[str, str] | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    # The page's forms are application/x-www-form-urlencoded (no file uploads).
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        return None


_LOGIN_FORM = ('<form method="post" action="/admin/login"><label>Admin password '
               '<input type="password" name="password" autofocus></label> <button>Sign in</button></form>')

_STYLE = ("body{font:15px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
          "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}form.inline{display:inline}"
          ".message{background:#eef;padding:.5em}.error{color:#a00}")

# Destructive buttons ask first; the page works without script too.
_SCRIPT = ("document.querySelectorAll('form[data-confirm]').forEach(f=>f.addEventListener('submit',e=>{"
           "if(!confirm(e.submitter.textContent+' ?'))e.preventDefault();}));")


def _html(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} — eas-gateway</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}<script>{_SCRIPT}</script>"
            "</body></html>")
    # The page is never framed (clickjacking) and loads nothing from elsewhere.
    return HTMLResponse(page, status_code=status, headers={
        "X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'", "Cache-Control": "no-store",
        **(headers or {})})
