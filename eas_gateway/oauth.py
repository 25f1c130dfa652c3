"""OAuth 2.0 sign-in: ``Authorization: Bearer`` JSON Web Tokens from an OpenID issuer.

A phone set up for OAuth (iOS: the Exchange payload's OAuth keys; docs/oauth.md) signs the
user in at the issuer and sends its access token with every request. The gateway checks it
here, offline, against the issuer's published keys (JWKS):

- the signature, with a key of the issuer's JWKS found by the token's ``kid`` (a token
  without one: the JWKS's only key); the JWKS is read at the first token, again after
  ``JWKS_MAX_AGE`` (keys the issuer withdrew stop counting), and again when a token names an
  unknown key (the issuer rotated), at most once every ``jwks_min_interval`` seconds;
- the algorithm, from an allow-list of public-key algorithms only (``none`` and the HMAC
  family never: a token "signed" with the issuer's public key as an HMAC secret is refused
  before any key is looked at), and the key's own ``alg`` when the JWKS names one;
- ``exp`` (required), ``nbf``, ``iat``, ``iss`` (the configured issuer), ``aud`` (the
  configured audience), with ``leeway`` seconds for clocks that differ;
- the user: the claim ``user_claim`` (default ``email``), a non-empty string.

The upstream is then reached as that user (usm.upstream.Credentials.auth) with either the
phone's own token (an upstream that accepts the issuer's tokens), or, where the upstream
trusts a key of the gateway's (Cyrus' http_jwt_key_dir), a short token the gateway signs
itself: {"sub": user, "iat": now}, RS256, the form Cyrus 3.6 accepts — it refuses any other
claim, so the phone's token cannot go there as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from eas_gateway.errors import Unauthorized, UpstreamFailed
from eas_gateway.signin_gate import SignInGate
from usm.upstream import Account, AuthenticationFailed, Credentials, Upstream, UpstreamUnavailable

log = logging.getLogger(__name__)

# Public-key algorithms (RFC 7518 3.1, RFC 8037): a token signed with one of these cannot be
# made by anyone holding only the issuer's published keys.
KEY_TYPES = {"RS256": "RSA", "RS384": "RSA", "RS512": "RSA", "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
             "ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP"}  # the JWK kty of each
PUBLIC_KEY_ALGORITHMS = frozenset(KEY_TYPES)
JWKS_MAX_AGE = 3600.0
# A token the gateway signs for the upstream is used this long, then another is made
# (Cyrus' http_jwt_max_age must be longer; scripts/cyrus-upstream.sh sets 600 s).
UPSTREAM_TOKEN_REUSE = 60.0


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    kty: str
    alg: str | None  # the JWK's own "alg", when it names one


class TokenRefused(Unauthorized):
    """A bearer token that is not good: RFC 6750 3.1 ``invalid_token``."""


def algorithms(raw: str) -> tuple[str, ...]:
    """The allow-list of EAS_OAUTH_ALGORITHMS; anything but public-key algorithms is refused."""
    names = tuple(a.strip() for a in raw.split(",") if a.strip())
    wrong = [a for a in names if a not in PUBLIC_KEY_ALGORITHMS]
    if not names or wrong:
        raise ValueError(f"EAS_OAUTH_ALGORITHMS={raw!r}: only public-key algorithms "
                         f"({', '.join(sorted(PUBLIC_KEY_ALGORITHMS))}) may be allowed")
    return names


class Issuer:
    """An OpenID issuer whose access tokens sign users in."""

    def __init__(self, issuer: str, audience: str, *, allowed: tuple[str, ...] = ("RS256", "ES256"),
                 jwks_url: str = "", user_claim: str = "email", leeway: float = 60.0,
                 jwks_min_interval: float = 10.0, http: httpx.AsyncClient | None = None) -> None:
        if not issuer or not audience:
            raise ValueError("an OAuth issuer needs both EAS_OAUTH_ISSUER and EAS_OAUTH_AUDIENCE")
        self.issuer = issuer
        self.audience = audience
        self.allowed = allowed
        self.jwks_url = jwks_url
        self.user_claim = user_claim
        self.leeway = leeway
        self.jwks_min_interval = jwks_min_interval
        # The issuer's sign-in page, told to phones in the 401's challenge (from its discovery document).
        self.authorization_endpoint = ""
        self._http = http or httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self._keys: dict[str | None, _Key] = {}
        self._fetched = -float("inf")
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def user(self, token: str) -> tuple[str, dict[str, Any]]:
        """The user a token signs in, and its claims; TokenRefused saying why it is not good,
        UpstreamFailed when the issuer's keys cannot be read."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRefused(f"bearer token is no JWS: {exc}") from exc
        alg = header.get("alg")
        if alg not in self.allowed:
            raise TokenRefused(f"bearer token algorithm {alg!r} is not one of {', '.join(self.allowed)}")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("bearer token kid is not a string")
        key = await self._key(kid)
        if KEY_TYPES[alg] != key.kty or key.alg not in (None, alg):
            raise TokenRefused(f"bearer token algorithm {alg!r} does not fit its key ({key.kty}, {key.alg})")
        try:
            claims = jwt.decode(token, key.jwk.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway, options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"bearer token refused: {type(exc).__name__}: {exc}") from exc
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user.strip():
            raise TokenRefused(f"bearer token has no {self.user_claim!r} claim naming the user")
        return user.strip(), claims

    async def _key(self, kid: str | None) -> _Key:
        now = time.monotonic()
        if now - self._fetched > JWKS_MAX_AGE:
            await self._refresh(now, force=True)
        key = self._find(kid)
        if key is None and await self._refresh(now, force=False):
            key = self._find(kid)
        if key is None:
            raise TokenRefused(f"bearer token signed with key {kid!r}, not one of the issuer's")
        return key

    def _find(self, kid: str | None) -> _Key | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, asked: float, *, force: bool) -> bool:
        """Read the JWKS again (once for every request that asked at the same time); False
        when it was read too recently to ask the issuer again."""
        async with self._lock:
            if self._fetched >= asked:
                return True  # another request read it meanwhile
            if not force and time.monotonic() - self._fetched < self.jwks_min_interval:
                return False
            url = self.jwks_url or await self._discover()
            keys = _signing_keys(await self._get_json(url))
            if not keys:
                raise UpstreamFailed(f"OAuth issuer's JWKS {url} has no public signing key")
            self._keys = keys
            self._fetched = time.monotonic()
            log.info("OAuth: read %d signing keys of %s", len(self._keys), self.issuer)
            return True

    async def _discover(self) -> str:
        """OpenID Connect Discovery 1.0 section 4: the issuer's jwks_uri and authorization_endpoint."""
        document = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != self.issuer:
            raise UpstreamFailed(f"OAuth discovery document of {self.issuer} names issuer {document.get('issuer')!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise UpstreamFailed(f"OAuth discovery document of {self.issuer} has no jwks_uri")
        self.authorization_endpoint = str(document.get("authorization_endpoint") or "")
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"OAuth issuer unreachable at {url}: {exc!r}") from exc
        if response.status_code != 200:
            raise UpstreamFailed(f"OAuth issuer answered {response.status_code} for {url}")
        try:
            document = response.json()
        except ValueError as exc:
            raise UpstreamFailed(f"OAuth issuer's {url} is not JSON") from exc
        if not isinstance(document, dict):
            raise UpstreamFailed(f"OAuth issuer's {url} is not a JSON object")
        return document


def _signing_keys(document: dict[str, Any]) -> dict[str | None, _Key]:
    """The public signing keys of a JWKS (RFC 7517 5), by kid; others (encryption keys,
    secret "oct" keys, kinds pyjwt cannot read) are left out."""
    found: dict[str | None, _Key] = {}
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or \
                entry.get("kty") not in KEY_TYPES.values():
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("OAuth: a key of the issuer's JWKS is left out: %s", exc)
            continue
        alg = entry.get("alg")
        found[jwk.key_id] = _Key(jwk, str(entry["kty"]), alg if isinstance(alg, str) else None)
    return found


class BearerToken(httpx.Auth):
    """The phone's own token, for an upstream that accepts the issuer's tokens."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class UpstreamSigner:
    """Signs the upstream's logins for OAuth users: {"sub": user, "iat": now}, RS256 with a
    private key whose public half the upstream trusts (Cyrus: http_jwt_key_dir)."""

    def __init__(self, pem: bytes) -> None:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("EAS_UPSTREAM_JWT_KEY must be an RSA private key (PEM): Cyrus takes RS256")
        self._key = key
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token(self, user: str) -> str:
        now = time.time()
        with self._lock:
            cached = self._tokens.get(user)
            if cached and now - cached[1] < UPSTREAM_TOKEN_REUSE:
                return cached[0]
            # Cyrus refuses a token whose "iat" is ahead of its clock: one second back.
            issued = int(now) - 1
            token = jwt.encode({"sub": user, "iat": issued}, self._key, algorithm="RS256", headers={"typ": "JWT"})
            if len(self._tokens) > 100_000:
                self._tokens.clear()
            self._tokens[user] = (token, float(issued))
            return token

    def auth(self, user: str) -> httpx.Auth:
        return _Signed(self, user)


class _Signed(httpx.Auth):
    def __init__(self, signer: UpstreamSigner, user: str) -> None:
        self.signer = signer
        self.user = user

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.signer.token(self.user)}"
        yield request


def token_key(token: str) -> str:
    """What a validated token is remembered by (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


class BearerSignIn:
    """Signs in the users of bearer tokens: the issuer's check, then the upstream's account
    (remembered by the token's digest for ``ttl`` seconds, at most until the token expires)."""

    def __init__(self, issuer: Issuer, upstream: Upstream, *, signer: UpstreamSigner | None = None,
                 ttl: float = 60.0, max_entries: int = 100_000, gate: SignInGate | None = None) -> None:
        self.issuer = issuer
        self.upstream = upstream
        self.signer = signer
        self.ttl = ttl
        self.max_entries = max_entries
        self._accounts: dict[str, tuple[Account, float]] = {}
        self.gate = gate or SignInGate()  # the node's bound on upstream sign-ins at once

    async def authenticate(self, token: str) -> tuple[Credentials, Account]:
        user, claims = await self.issuer.user(token)
        credentials = Credentials(user=user, auth=self.signer.auth(user) if self.signer else BearerToken(token))
        key, now = token_key(token), time.monotonic()
        cached = self._accounts.get(key)
        if cached and cached[1] > now:
            return credentials, cached[0]
        try:
            account = await self.gate.sign_in(key, lambda: self.upstream.authenticate(credentials))
        except AuthenticationFailed as exc:
            raise Unauthorized(f"the upstream refused OAuth user {user!r}: {exc}") from exc
        except UpstreamUnavailable as exc:
            raise UpstreamFailed(str(exc)) from exc
        if len(self._accounts) >= self.max_entries:
            self._accounts.clear()
        self._accounts[key] = (account, now + max(0.0, min(self.ttl, float(claims["exp"]) - time.time())))
        return credentials, account
