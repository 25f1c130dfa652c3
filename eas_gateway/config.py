"""Settings: command-line options, each also an EAS_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Settings:
    upstream: str = "http://127.0.0.1:8580"
    # Base URL of the CalDAV/CardDAV server (contacts, calendars), found through
    # /.well-known/carddav and /.well-known/caldav; empty: the same as upstream;
    # "none": mail only.
    dav_upstream: str = ""
    # How often a user's watcher reads the DAV homes (sync-tokens of every
    # collection, one PROPFIND per home) while the user has held requests.
    dav_poll_seconds: float = 20.0
    host: str = "127.0.0.1"
    port: int = 8000
    # Processes accepting on the port (eas_gateway/workers.py): each uses one core and has its
    # own file-descriptor limit (one descriptor per held Ping); 1: this process serves alone.
    workers: int = 1
    database_url: str | None = None  # None: embedded PostgreSQL in state_dir
    state_dir: Path = Path("var")
    max_request_bytes: int = 64 * 1024 * 1024
    auth_cache_seconds: float = 60.0
    # Upstream sign-ins a node asks for at once (eas_gateway/signin_gate.py), and how long one
    # waits for its turn before the phone is told 503 with a Retry-After of 10 to 60 s (a herd
    # after a restart comes back spread out; signed-in phones keep the upstream connections).
    signin_concurrency: int = 16
    signin_wait_seconds: float = 10.0
    log_level: str = "INFO"
    # How often a waiting Sync or a Ping asks the upstream for changes when it
    # offers no push (Cyrus 3.6): one cheap */changes call per user per poll.
    poll_seconds: float = 20.0
    # The upstream's IMAP service, imap://host:port or imaps://host:port, for IDLE on the
    # INBOX of users with held requests (sub-second wake-ups where JMAP has no push, as
    # Debian's Cyrus 3.6); empty: none. At most imap_idle_max such connections per node.
    imap_idle: str = ""
    imap_idle_max: int = 5000
    # The secret an upstream's event notifier sends (Authorization: Bearer) to POST its change
    # events to /push/upstream-events (eas_gateway/upstream_events.py); empty: the endpoint is off.
    upstream_events_secret: str = ""
    # Once such events have come for a store (mail, or the DAV homes), its watchers poll
    # only this often, a safety net for a lost event (usm/push.py).
    events_poll_seconds: float = 300.0
    # How long a user's watcher (and the credentials it reads with) outlives the user's last
    # held request, so that a phone's next Ping finds the upstream states known.
    watch_linger_seconds: float = 60.0
    # Device access (usm/access.py): what a device no rule names gets (allow, block or
    # quarantine); identical requests per minute past which a device is in a sync loop and
    # blocked for loop_block_minutes (0: no autoblock).
    device_access: str = "allow"
    loop_limit: int = 60
    loop_block_minutes: float = 15.0
    # How soon a rule or block made elsewhere (another node, the CLI, SQL) counts.
    access_reload_seconds: float = 10.0
    # Ping HeartbeatInterval bounds in seconds (MS-ASCMD 2.2.3.88.1: implementation
    # specific; Exchange allows 60..3540). Apache's ProxyTimeout must exceed the maximum.
    heartbeat_min: int = 60
    heartbeat_max: int = 3540
    # "text" for people, "json" (one object per line) for log shippers.
    log_format: str = "text"
    # Addresses (or networks, comma-separated) of the reverse proxies whose
    # X-Forwarded-For/-Proto are believed. Empty: nobody's; the peer address is the client.
    trusted_proxies: str = ""
    # The URL phones are told to use (Autodiscover), e.g. https://mail.example.com;
    # empty: the scheme and host the request came with.
    public_url: str = ""
    # Mail domains served (comma-separated), for Autodiscover answers; empty: any.
    domains: str = ""
    # Password of the admin web page (/admin, user "admin"); empty: the page is off.
    admin_password: str = ""
    # Seconds a client has to send a complete request head (slowloris and silent sockets are
    # closed after that), and connections plus requests in progress at most (held Pings count;
    # beyond it new ones get 503). The systemd unit's LimitNOFILE must be above the latter.
    header_timeout: float = 30.0
    max_connections: int = 60000
    # The directory (GAL: Search, Find, ResolveRecipients): the path of a CardDAV address book
    # every user may read, e.g. a shared company book; empty: each user's own address books.
    directory: str = ""
    # PEM bundle of the roots ValidateCert trusts for S/MIME certificates.
    trust_store: str = "/etc/ssl/certs/ca-certificates.crt"
    # OAuth 2.0 sign-in (eas_gateway/oauth.py, docs/oauth.md): the OpenID issuer whose access
    # tokens (Authorization: Bearer) sign users in, and the audience ("aud") they must name;
    # empty issuer: bearer tokens are refused. The issuer's keys: oauth_jwks_url, else the
    # jwks_uri of its discovery document; read again when a token names an unknown key, at
    # most every oauth_jwks_refresh_seconds. The allowed algorithms (public-key ones only),
    # the claim that names the user, and the clock skew allowed in seconds.
    oauth_issuer: str = ""
    oauth_audience: str = ""
    oauth_jwks_url: str = ""
    oauth_jwks_refresh_seconds: float = 10.0
    oauth_algorithms: str = "RS256,ES256"
    oauth_user_claim: str = "email"
    oauth_leeway: float = 60.0
    # A PEM file with an RSA private key the upstream trusts to sign any user in (Cyrus: its
    # public half in http_jwt_key_dir): OAuth users reach the upstream with tokens the gateway
    # signs. Empty: the phone's own token goes upstream (an upstream that accepts the issuer's).
    upstream_jwt_key: str = ""
    # "off": passwords (Basic) sign nobody in, only OAuth tokens do.
    basic_auth: str = "on"
    # The users' time zone (IANA name): phones below EAS 16.0 get all-day events as its
    # local midnight, and floating times and blobs that match no zone are read in it.
    time_zone: str = "UTC"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, overridden by EAS_<NAME> variables, overridden by ``overrides`` (not None)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get("EAS_" + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        try:
            ZoneInfo(settings.time_zone)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise SystemExit(f"EAS_TIME_ZONE={settings.time_zone!r} is no IANA time zone") from exc
        if settings.workers < 1:
            raise SystemExit(f"EAS_WORKERS={settings.workers}: at least 1")
        if settings.signin_concurrency < 1:
            raise SystemExit(f"EAS_SIGNIN_CONCURRENCY={settings.signin_concurrency}: at least 1")
        _check_oauth(settings)
        return settings


def _convert(name: str, raw: str, annotation: object) -> object:
    kind = str(annotation)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise SystemExit(f"EAS_{name.upper()}={raw!r} is not a number") from exc
    if kind == "Path":
        return Path(raw)
    return raw


def _check_oauth(settings: Settings) -> None:
    from eas_gateway.oauth import algorithms

    if settings.basic_auth not in ("on", "off"):
        raise SystemExit(f"EAS_BASIC_AUTH={settings.basic_auth!r}: on or off")
    if settings.oauth_issuer and not settings.oauth_audience:
        raise SystemExit("EAS_OAUTH_ISSUER needs EAS_OAUTH_AUDIENCE (the aud its tokens name for this gateway)")
    if settings.basic_auth == "off" and not settings.oauth_issuer:
        raise SystemExit("EAS_BASIC_AUTH=off without EAS_OAUTH_ISSUER: nobody could sign in")
    try:
        algorithms(settings.oauth_algorithms)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
