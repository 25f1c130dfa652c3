"""The ASGI application: MS-ASHTTP on /Microsoft-Server-ActiveSync.

One request: authenticate (Basic, against the upstream) -> parse the request
line -> check user, version, command, size -> decode WBXML -> record the
device -> check its PolicyKey -> run the command -> encode. Every EASError is
turned into its response here and nowhere else, with one log line that says
why.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import wbxml
from eas_gateway import ashttp, autodiscover, upstream_events, versions
from eas_gateway.admin import web as admin_web
from eas_gateway.auth import Authenticator, parse_basic
from eas_gateway.classes import KINDS
from eas_gateway.commands import COMMANDS, WITHOUT_POLICY
from eas_gateway.commands.getattachment import Download
from eas_gateway.config import Settings
from eas_gateway.context import Context
from eas_gateway.errors import (
    BadRequest,
    CommandStatus,
    EASError,
    Forbidden,
    LegacyStatus,
    NeedsProvisioning,
    NotImplementedCommand,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UpstreamFailed,
    spread_retry_after,
)
from eas_gateway.front import ActiveSyncFront
from eas_gateway.hang_up import HangUpWatch, HungUp
from eas_gateway.oauth import BearerSignIn, Issuer, TokenRefused, UpstreamSigner
from eas_gateway.oauth import algorithms as oauth_algorithms
from eas_gateway.observability.metrics import CONTENT_TYPE as METRICS_TYPE
from eas_gateway.observability.metrics import Metrics
from eas_gateway.observability.trace import Tracer
from eas_gateway.observability.worker_metrics import WorkerMetrics
from eas_gateway.signin_gate import SignInGate
from eas_gateway.workers import Slot
from eas_gateway.xml import E
from usm import database, devices, ids
from usm.access import ALLOW, DeviceAccess
from usm.push import PushHub
from usm.table_care import TableCare
from usm.upstream import Account, Credentials, MailStore, UpstreamError, recording_writes
from usm.upstream.composite import Sources
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import DavStore
from usm.upstream.imap_idle import ImapIdle
from usm.upstream.jmap import JMAPUpstream

log = logging.getLogger("eas_gateway.request")

WBXML_TYPE = "application/vnd.ms-sync.wbxml"
# MS-ASCMD 2.2.2: Status codes shared by all commands.
REMOTE_WIPE_REQUESTED, DEVICE_NOT_PROVISIONED, INVALID_POLICY_KEY = 140, 142, 144
DEVICE_BLOCKED = 129  # DeviceIsBlockedForThisUser
# SendMail, SmartReply and SmartForward below 14.0 answer failures with HTTP
# only: item not found 404, server errors 500 (110 ServerError, 120
# MailSubmissionFailed), 111 ServerErrorRetryLater 503; the rest (malformed
# request or message, no recipient) 400.
LEGACY_HTTP_STATUS = {150: 404, 110: 500, 120: 500, 111: 503}
# Elements in a phone's request: a Sync of 512 changed items is some 25,000; more is no phone
# (the codec's own default, 1,000,000, is for documents of any sender).
MAX_ELEMENTS = 100_000
OFF_LOOP_BYTES = 256 * 1024
# What the database (or the pool in front of it) raises when it is down or restarting:
# refused or lost connections, "the database system is starting up / shutting down", a
# pool that cannot hand out a connection in time.
DATABASE_DOWN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                 asyncpg.exceptions.OperatorInterventionError, ConnectionError, TimeoutError)


class Gateway:
    """The services one gateway process holds."""

    def __init__(self, settings: Settings, *, upstream: MailStore | None = None, dav: DavStore | None = None,
                 worker: Slot | None = None) -> None:
        self.settings = settings
        mail: MailStore = upstream or JMAPUpstream(settings.upstream)
        if dav is None and settings.dav_upstream != "none":
            dav = DavUpstream(settings.dav_upstream or settings.upstream)
        self.upstream = Sources(mail, dav, kinds=KINDS)
        self.signins = SignInGate(settings.signin_concurrency, settings.signin_wait_seconds)
        self.auth = Authenticator(self.upstream, ttl=settings.auth_cache_seconds, gate=self.signins)
        self.bearer = _bearer_sign_in(settings, self.upstream, self.signins)
        self.db: asyncpg.Pool | None = None
        self.embedded: database.Embedded | None = None
        self.push: PushHub | None = None
        self.access: DeviceAccess | None = None
        self.tracer: Tracer | None = None
        self.table_care: TableCare | None = None
        self.metrics = Metrics()
        self.metrics.watch_signins(self.signins)
        # One of several workers: a scrape shows every worker's metrics.
        self.worker_metrics = WorkerMetrics(worker.metrics_dir, worker.index, self.metrics.render) \
            if worker is not None else None
        if isinstance(mail, JMAPUpstream):
            mail.observe = self.metrics.upstream
        if isinstance(dav, DavUpstream):
            dav.observe = self.metrics.upstream

    async def start(self) -> None:
        url = self.settings.database_url
        if not url:
            # The embedded PostgreSQL stops with the gateway (released in stop()).
            self.embedded = await asyncio.to_thread(database.embedded, self.settings.state_dir)
            url = self.embedded.url
        self.db = await database.connect(url, on_statement=self.metrics.statement)
        idle = ImapIdle(self.settings.imap_idle, max_connections=self.settings.imap_idle_max) \
            if self.settings.imap_idle else None
        self.push = PushHub(self.db, self.upstream, poll_seconds=self.settings.poll_seconds,
                            dav_poll_seconds=self.settings.dav_poll_seconds, idle=idle,
                            events=bool(self.settings.upstream_events_secret),
                            events_poll_seconds=self.settings.events_poll_seconds,
                            linger_seconds=self.settings.watch_linger_seconds)
        await self.push.start()
        self.access = DeviceAccess(self.db, default=self.settings.device_access, loop_limit=self.settings.loop_limit,
                                   block_minutes=self.settings.loop_block_minutes,
                                   reload_seconds=self.settings.access_reload_seconds)
        self.tracer = Tracer(self.db)
        await self.tracer.start()
        self.table_care = TableCare(self.db)
        await self.table_care.start()
        push, db = self.push, self.db
        self.metrics.watch(held=lambda: push.waiting, pool_size=db.get_size, pool_idle=db.get_idle_size)
        if self.worker_metrics is not None:
            await self.worker_metrics.start()

    async def stop(self) -> None:
        if self.worker_metrics is not None:
            await self.worker_metrics.stop()
        if self.table_care is not None:
            await self.table_care.stop()
        if self.tracer is not None:
            await self.tracer.stop()
        if self.push is not None:
            await self.push.stop()
        if self.db is not None:
            try:
                await asyncio.wait_for(self.db.close(), timeout=10)
            except TimeoutError:
                log.warning("database pool did not close within 10 s; terminating its connections")
                self.db.terminate()
        await self.upstream.aclose()
        if self.bearer is not None:
            await self.bearer.issuer.aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.release)
            log.info("embedded PostgreSQL released (stopped unless another process holds it)")

    async def activesync(self, request: Request) -> Response:
        """A request to /Microsoft-Server-ActiveSync (from eas_gateway.front): OPTIONS or POST."""
        if request.method == "OPTIONS":
            try:
                return await self.options(request)
            except EASError as exc:
                log.info("OPTIONS refused: %s", _describe(exc))
                return self.challenge(_error_response(exc, None), exc)
        return await self.post(request)

    async def options(self, request: Request) -> Response:
        await self._credentials(request)
        return Response(status_code=200, headers=_options_headers())

    async def post(self, request: Request) -> Response:
        started = time.monotonic()
        line: ashttp.RequestLine | None = None
        status, detail = "200", ""
        try:
            credentials, account_user = await self._credentials(request)
            line = ashttp.parse(_query(request), {k.lower(): v for k, v in request.headers.items()})
            with self.metrics.counting_statements(line.command if line.command in COMMANDS else "-"):
                return await self._command(request, line, credentials, account_user)
        except HungUp:
            status, detail = "hung-up", " the phone closed the connection while held"
            log.info("%s of %s ended: the phone hung up", line.command if line else "request",
                     line.device_id if line else "?")
            return Response(b"", status_code=204)  # nobody reads it
        except EASError as exc:
            status = f"{exc.http_status}" if not isinstance(exc, CommandStatus) else f"eas-{exc.status}"
            detail = f" {type(exc).__name__}: {exc}"
            return self.challenge(_error_response(exc, line), exc)
        except DATABASE_DOWN as exc:
            # The database (or its pool) is unreachable: phones retry after a 503, and nothing was
            # committed (every write commits at the end of its command).
            status, detail = "503", f" database unavailable: {type(exc).__name__}: {exc}"
            log.warning("database unavailable for %s: %r", request.scope["path"], exc)
            return Response("database unavailable, retry later\n", status_code=503,
                            headers={"Retry-After": str(math.ceil(spread_retry_after()))},
                            media_type="text/plain")
        except Exception as exc:
            # A bug: answered as what it is, logged with its traceback, counted as a 500.
            status, detail = "500", f" {type(exc).__name__}: {exc}"
            log.exception("unexpected error in %s", line.command if line else request.scope["path"])
            return Response("internal error\n", status_code=500, media_type="text/plain")
        finally:
            seconds = time.monotonic() - started
            command = line.command if line and line.command in COMMANDS else "-"
            self.metrics.request(command, status, seconds)
            fields = {"user": line.user if line else "-", "device": line.device_id if line else "-",
                      "command": line.command if line else "-", "version": line.version if line else "-",
                      "status": status, "ms": round(seconds * 1e3, 1),
                      "client": request.client.host if request.client else "-"}
            log.info("user=%s device=%s cmd=%s version=%s status=%s ms=%.1f client=%s%s", fields["user"],
                     fields["device"], fields["command"], fields["version"], status, fields["ms"],
                     fields["client"], detail, extra=fields)

    async def health(self) -> dict[str, str]:
        """What is wrong, by component ("ok" when nothing is)."""
        checks = {"database": "ok", "upstream": "ok"}
        assert self.db is not None, "Gateway.start() was not awaited"
        try:
            await database.check(self.db)
        except database.DatabaseError as exc:
            checks["database"] = str(exc)
        try:
            await self.upstream.reachable()
        except UpstreamError as exc:
            checks["upstream"] = str(exc)
        return checks

    async def _credentials(self, request: Request) -> tuple[Credentials, str]:
        credentials, account = await self.sign_in(request)
        return credentials, account.user

    async def sign_in(self, request: Request) -> tuple[Credentials, Account]:
        """The request's user: a password (Basic, eas_gateway.auth) or an OAuth access token
        (Bearer, eas_gateway.oauth), whichever this gateway takes; Unauthorized otherwise."""
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer":
            if self.bearer is None:
                raise Unauthorized("a bearer token, and no OAuth issuer is configured (EAS_OAUTH_ISSUER)")
            return await self.bearer.authenticate(token.strip())
        if self.settings.basic_auth == "off" and header:
            raise Unauthorized(f"{scheme or 'an empty'} authorization: only OAuth bearer tokens sign in here "
                               "(EAS_BASIC_AUTH=off)")
        credentials = parse_basic(header)
        account = await self.auth.authenticate(credentials, client=request.client.host if request.client else "",
                                               db=self.db)
        return credentials, account

    def challenge(self, response: Response, exc: EASError) -> Response:
        """The WWW-Authenticate challenges of a 401 (RFC 7235 4.1): Basic when passwords sign
        in, Bearer (RFC 6750 3) when OAuth does, naming the issuer's sign-in page and, for a
        refused token, invalid_token."""
        if not isinstance(exc, Unauthorized):
            return response
        del response.headers["WWW-Authenticate"]
        if self.settings.basic_auth == "on":
            response.headers.append("WWW-Authenticate", 'Basic realm="ActiveSync"')
        if self.bearer is not None:
            params = ['realm="ActiveSync"']
            if self.bearer.issuer.authorization_endpoint:
                params.append(f'authorization_uri="{self.bearer.issuer.authorization_endpoint}"')
            if isinstance(exc, TokenRefused):
                params.append('error="invalid_token"')
            response.headers.append("WWW-Authenticate", "Bearer " + ", ".join(params))
        return response

    async def _command(self, request: Request, line: ashttp.RequestLine, credentials: Credentials,
                       account_user: str) -> Response:
        if not _same_user(line.user, account_user, credentials.user):
            raise Forbidden(f"User={line.user!r} is not the authenticated user {account_user!r}")
        version = line.version or ""
        if version not in versions.VERSIONS:
            raise BadRequest(f"protocol version {version!r} not offered (MS-ASProtocolVersions)")
        if line.command in versions.COMMANDS and not versions.offers(line.command, version):
            first, last = versions.COMMANDS[line.command]
            raise BadRequest(f"{line.command} is a command of protocol versions {first} to {last or 'now'}, "
                             f"not of {version} (MS-ASCMD 2.2.1)")
        command = COMMANDS.get(line.command)
        if command is None:
            raise NotImplementedCommand(f"command {line.command!r} is not implemented")
        tree, raw = await self._body(request, mime=command.mime_body and float(version) < 14.0)
        assert self.db is not None and self.push is not None and self.access is not None, \
            "Gateway.start() was not awaited"
        await self._check_access(line, account_user, request, raw, version)
        async with self.db.acquire() as conn:
            device = await devices.touch(conn, account_user, line.device_id, line.device_type,
                                         request.headers.get("user-agent"), version)
        if line.command not in WITHOUT_POLICY:
            _check_wipe(device, version)
            _check_policy(device, line, version)
        ctx = Context(line=line, version=version, credentials=credentials, user=account_user,
                      device=device, db=self.db, upstream=self.upstream, settings=self.settings, push=self.push)
        tracer = self.tracer if self.tracer and self.tracer.traced(account_user, line.device_id) else None
        if tracer:
            tracer.record(account_user, line.device_id, line.command, "request", tree)
        try:
            with recording_writes() as writes:
                work = command.handle(ctx, tree)
                del tree, raw  # not kept by this frame while a request is held
                if line.command in HELD_UNTIL_HANG_UP:
                    with HangUpWatch(request):
                        result = await work
                else:
                    result = await work
        except CommandStatus as exc:
            if not command.root:
                raise
            if command.mime_body and float(version) < 14.0:
                raise LegacyStatus(LEGACY_HTTP_STATUS.get(exc.status, 400), f"Status {exc.status}: {exc}") from exc
            log.info("%s Status %d: %s", line.command, exc.status, exc)
            result = _status_tree(command.root, exc.status)
        except UpstreamError as exc:
            raise UpstreamFailed(f"upstream: {exc}") from exc
        finally:
            if writes.wrote:
                await self.push.changed(account_user, folders=writes.folders)
        if isinstance(result, Download):  # bytes of their own type: nothing for the protocol trace
            return Response(result.content, media_type=result.media_type)
        if tracer:
            tracer.record(account_user, line.device_id, line.command, "response", result)
        body = result if isinstance(result, bytes) else wbxml.encode(versions.checked(result, version, line.command))
        return Response(body, media_type=WBXML_TYPE)

    async def _check_access(self, line: ashttp.RequestLine, user: str, request: Request, raw: bytes,
                            version: str) -> None:
        """Device access rules and blocks (usm.access): a device refused gets Status 129
        (MS-ASCMD 2.2.2: blocked for this user), below 14.0 HTTP 403; a device that sends the
        same request too often in a minute is in a loop and blocked from now on."""
        assert self.access is not None
        decision = await self.access.decide(user, line.device_id, line.device_type,
                                            request.headers.get("user-agent", ""))
        if decision.access == ALLOW:
            decision = await self.access.seen(user, line.device_id, line.command, _query(request), raw) or decision
        if decision.access == ALLOW:
            return
        reason = f"device {line.device_id} of {user}: {decision.access} by {decision.why}"
        if float(version) < 14.0 or not COMMANDS[line.command].root:
            raise Forbidden(reason)
        raise CommandStatus(DEVICE_BLOCKED, reason)

    async def _body(self, request: Request, *, mime: bool = False) -> tuple[etree._Element | bytes | None, bytes]:
        """The decoded WBXML body, or with ``mime`` (12.x SendMail and friends,
        Content-Type message/rfc822) the bare message bytes; and the bytes as they came."""
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if (ids.number(declared, digits=20) or 0) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds {limit}")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise HungUp("the phone closed the connection before its request's body was in") from None
        data = b"".join(chunks)
        if mime and request.headers.get("content-type", "").lower().startswith("message/rfc822"):
            return data, data
        if not data:
            return None, data
        try:
            if len(data) > OFF_LOOP_BYTES:  # a big body is decoded beside the event loop, not on it
                return await asyncio.to_thread(wbxml.decode, data, max_size=limit, max_elements=MAX_ELEMENTS), data
            return wbxml.decode(data, max_size=limit, max_elements=MAX_ELEMENTS), data
        except wbxml.LimitExceededError as exc:
            raise PayloadTooLarge(f"WBXML body: {exc}") from exc
        except wbxml.WBXMLError as exc:
            raise BadRequest(f"malformed WBXML body: {exc}") from exc


# Requests that only read while they wait: ended when the phone hangs up (a waiting Sync has
# applied the phone's commands before it waits, and ends at its own time).
HELD_UNTIL_HANG_UP = frozenset({"Ping"})


def _query(request: Request) -> str:
    """The request's query as sent (request.url would parse, and keep, the whole URL: a
    held Ping keeps what its request holds)."""
    raw: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1")


def _check_wipe(device: devices.Device, version: str) -> None:
    """A device an admin asked to wipe gets nothing but the way to Provision,
    which carries the directive (MS-ASPROV 3.1.5.1: 449 below 14.0, else Status 140)."""
    if device.wipe_kind is None:
        return
    reason = f"{device.wipe_kind} wipe requested by an admin"
    if float(version) < 14.0:
        raise NeedsProvisioning(reason)
    raise CommandStatus(REMOTE_WIPE_REQUESTED, reason)


def _check_policy(device: devices.Device, line: ashttp.RequestLine, version: str) -> None:
    sent = line.policy_key
    if device.policy_key is not None and sent == str(device.policy_key):
        return
    reason = "not provisioned" if device.policy_key is None else f"PolicyKey {sent!r} is not the current one"
    if float(version) < 14.0:
        raise NeedsProvisioning(reason)
    status = DEVICE_NOT_PROVISIONED if (device.policy_key is None or not sent or sent == "0") else INVALID_POLICY_KEY
    raise CommandStatus(status, reason)


def _same_user(requested: str, account_user: str, login: str) -> bool:
    requested = requested.split("\\")[-1].lower()
    return requested in (account_user.lower(), login.lower())


def _options_headers() -> dict[str, str]:
    return {
        "Allow": "OPTIONS,POST",
        "MS-Server-ActiveSync": "16.1",
        "MS-ASProtocolVersions": ",".join(versions.VERSIONS),
        "MS-ASProtocolCommands": ",".join(COMMANDS),
    }


# MS-ASPROV 3.2.5.1: the device must Provision (again); 449 where no Status element can say it.
PROVISIONING_STATUSES = frozenset({139, 140, 141, 142, 143, 144, 145})


def _status_tree(root_tag: str, status: int) -> etree._Element:
    root = E(None, root_tag)
    E(root, "{%s}Status" % etree.QName(root_tag).namespace, status)
    return root


def _describe(exc: EASError) -> str:
    return f"{exc.http_status} {type(exc).__name__}: {exc}"


def _error_response(exc: EASError, line: ashttp.RequestLine | None) -> Response:
    if isinstance(exc, CommandStatus) and line is not None and line.command in COMMANDS:
        root = COMMANDS[line.command].root
        if not root:  # a command whose answer is no WBXML document (GetAttachment): an HTTP status
            return Response(f"Status {exc.status}: {exc}\n", media_type="text/plain",
                            status_code=449 if exc.status in PROVISIONING_STATUSES else 400)
        body = wbxml.encode(_status_tree(root, exc.status))
        return Response(body, media_type=WBXML_TYPE)
    headers = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Basic realm="ActiveSync"'
    if isinstance(exc, (UpstreamFailed, TooManyRequests)):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return Response(str(exc) + "\n", status_code=exc.http_status, headers=headers, media_type="text/plain")


def _trusted_client(request: Request, settings: Settings) -> bool:
    """A request from this machine or from a trusted proxy's network (EAS_TRUSTED_PROXIES)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    for entry in (e.strip() for e in settings.trusted_proxies.split(",") if e.strip()):
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _bearer_sign_in(settings: Settings, upstream: Sources, gate: SignInGate) -> BearerSignIn | None:
    """OAuth sign-in when an issuer is configured (its settings were checked by Settings.from_env)."""
    if not settings.oauth_issuer:
        return None
    signer = None
    if settings.upstream_jwt_key:
        try:
            signer = UpstreamSigner(Path(settings.upstream_jwt_key).read_bytes())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"EAS_UPSTREAM_JWT_KEY={settings.upstream_jwt_key!r}: {exc}") from exc
    issuer = Issuer(settings.oauth_issuer, settings.oauth_audience, allowed=oauth_algorithms(settings.oauth_algorithms),
                    jwks_url=settings.oauth_jwks_url, user_claim=settings.oauth_user_claim,
                    leeway=settings.oauth_leeway, jwks_min_interval=settings.oauth_jwks_refresh_seconds)
    return BearerSignIn(issuer, upstream, signer=signer, ttl=settings.auth_cache_seconds, gate=gate)


def create_app(settings: Settings, *, upstream: MailStore | None = None, dav: DavStore | None = None,
               worker: Slot | None = None) -> ActiveSyncFront | ProxyHeadersMiddleware:
    gateway = Gateway(settings, upstream=upstream, dav=dav, worker=worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await gateway.start()
        try:
            yield {}
        finally:
            await gateway.stop()

    async def upstream_events_endpoint(request: Request) -> Response:
        return await upstream_events.receive(gateway, request)

    async def healthz(request: Request) -> Response:
        checks = await gateway.health()
        healthy = all(v == "ok" for v in checks.values())
        if not healthy:
            log.warning("health check failed: %s", checks)
        if not _trusted_client(request, settings):
            # What failed, but not how: error texts name hosts, ports and versions.
            checks = {k: "ok" if v == "ok" else "failing" for k, v in checks.items()}
        return JSONResponse({"status": "ok" if healthy else "failing", **checks}, status_code=200 if healthy else 503)

    async def metrics(request: Request) -> Response:
        node = gateway.worker_metrics
        return Response(await node.render_node() if node else gateway.metrics.render(), media_type=METRICS_TYPE)

    async def autodiscover_pox(request: Request) -> Response:
        try:
            return await autodiscover.pox(request, gateway)
        except EASError as exc:
            log.info("Autodiscover refused: %s", _describe(exc))
            return gateway.challenge(_error_response(exc, None), exc)

    async def autodiscover_json(request: Request) -> Response:
        return await autodiscover.json_v2(request, gateway)

    # Phones differ in the case of the path (iOS: /Autodiscover/Autodiscover.xml).
    discovery = [Route(f"/{a}utodiscover/{a}utodiscover.xml", autodiscover_pox, methods=["POST"]) for a in "aA"]
    discovery += [Route(f"/{a}utodiscover/{a}utodiscover.json{tail}", autodiscover_json, methods=["GET"])
                  for a in "aA" for tail in ("", "/v1.0/{address}")]
    app = Starlette(routes=[*discovery, Route("/healthz", healthz), Route("/metrics", metrics),
                            Route("/push/upstream-events", upstream_events_endpoint, methods=["POST"]),
                            *admin_web.routes(gateway)],
                    lifespan=lifespan)
    app.state.gateway = gateway
    # The ActiveSync endpoint before Starlette's layers (eas_gateway.front: held Pings are many).
    front = ActiveSyncFront(app, gateway.activesync)
    if not settings.trusted_proxies.strip():
        return front
    # X-Forwarded-For/-Proto only from the configured proxies (deploy/apache).
    return ProxyHeadersMiddleware(front, trusted_hosts=  # type: ignore[arg-type]  # an ASGI app
                                  [h.strip() for h in settings.trusted_proxies.split(",")])
