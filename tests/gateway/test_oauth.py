"""OAuth 2.0 sign-in (eas_gateway/oauth.py) against a local issuer the tests create (keys,
discovery document and JWKS on loopback): what an attacker forges is refused, a rotated key
is accepted, and a phone with a token syncs mail, contacts and calendars from Debian's Cyrus,
reached with tokens the gateway signs (http_jwt)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from eas_gateway.config import Settings
from eas_gateway.errors import UpstreamFailed
from eas_gateway.oauth import BearerToken, Issuer, TokenRefused, UpstreamSigner
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import A, Phone, collection, deliver, message, new_user, password, post
from tests.oauth_issuer import LocalIssuer
from usm.upstream import AuthenticationFailed, Credentials
from usm.upstream.imap_idle import ImapIdle
from usm.upstream.jmap import JMAPUpstream


@pytest.fixture(scope="module")
def local_issuer() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer()
    yield issuer
    issuer.close()


@pytest.fixture
async def issuer(local_issuer: LocalIssuer) -> AsyncIterator[Issuer]:
    checker = Issuer(local_issuer.url, local_issuer.audience, jwks_min_interval=0.0)
    yield checker
    await checker.aclose()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + (_b64(sign(head.encode())) if sign else "")


async def test_a_good_token_names_its_user(issuer: Issuer, local_issuer: LocalIssuer) -> None:
    user, claims = await issuer.user(local_issuer.token("carol@example.com"))
    assert user == "carol@example.com" and claims["aud"] == "eas-gateway"
    ec_kid = local_issuer.add_key("EC")  # an ES256 key published beside the RSA one
    assert (await issuer.user(local_issuer.token("dave@example.com", kid=ec_kid)))[0] == "dave@example.com"
    assert issuer.authorization_endpoint == local_issuer.url + "/authorize"  # from the discovery document


@pytest.mark.parametrize("attack", ["alg none", "HS256 with the public key", "expired", "not yet valid",
                                    "wrong audience", "wrong issuer", "unknown kid", "no exp", "no user",
                                    "tampered claims", "not a JWT", "RS256 key as PS256"])
async def test_forged_or_wrong_tokens_are_refused(issuer: Issuer, local_issuer: LocalIssuer, attack: str) -> None:
    now, kid = int(time.time()), local_issuer.current
    claims = local_issuer.claims("mallory@example.com")
    public_pem = local_issuer.keys[kid].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = {
        "alg none": lambda: _forged({"alg": "none", "typ": "JWT", "kid": kid}, claims),
        "HS256 with the public key": lambda: _forged(
            {"alg": "HS256", "typ": "JWT", "kid": kid}, claims,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()),
        "expired": lambda: local_issuer.token("mallory@example.com", exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not yet valid": lambda: local_issuer.token("mallory@example.com", nbf=now + 3600),
        "wrong audience": lambda: local_issuer.token("mallory@example.com", aud="another-app"),
        "wrong issuer": lambda: local_issuer.token("mallory@example.com", iss="https://evil.example"),
        "unknown kid": lambda: jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                          algorithm="RS256", headers={"kid": "nobody-knows"}),
        "no exp": lambda: local_issuer.token("mallory@example.com", exp=None),
        "no user": lambda: local_issuer.token("mallory@example.com", email=None),
        "tampered claims": lambda: _swap_claims(local_issuer.token("mallory@example.com"),
                                                {**claims, "email": "alice@example.com"}),
        "not a JWT": lambda: "not-a-token",
        "RS256 key as PS256": lambda: _published_as(local_issuer, "RS256", "PS256"),
    }[attack]()
    with pytest.raises(TokenRefused):
        await issuer.user(token)


def _swap_claims(token: str, claims: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


def _published_as(local_issuer: LocalIssuer, published: str, used: str) -> str:
    """A key the JWKS says is for ``published``, used to sign with ``used``."""
    kid = local_issuer.add_key()
    original = local_issuer.jwks

    def jwks() -> dict[str, Any]:
        found = original()
        for entry in found["keys"]:
            if entry["kid"] == kid:
                entry["alg"] = published
        return found
    local_issuer.jwks = jwks  # type: ignore[method-assign]
    return local_issuer.token("mallory@example.com", kid=kid, alg=used)


async def test_a_small_clock_skew_is_allowed(issuer: Issuer, local_issuer: LocalIssuer) -> None:
    now = int(time.time())
    assert await issuer.user(local_issuer.token("erin@example.com", exp=now - 20, nbf=now + 20))


async def test_a_rotated_key_is_read_and_a_withdrawn_one_refused(local_issuer: LocalIssuer) -> None:
    issuer = Issuer(local_issuer.url, local_issuer.audience, jwks_min_interval=0.0)
    try:
        before = local_issuer.token("frank@example.com")
        assert await issuer.user(before)
        reads = local_issuer.jwks_reads
        assert await issuer.user(local_issuer.token("frank@example.com"))
        assert local_issuer.jwks_reads == reads  # known key: the JWKS is not read again
        local_issuer.rotate()
        assert (await issuer.user(local_issuer.token("frank@example.com")))[0] == "frank@example.com"
        assert local_issuer.jwks_reads == reads + 1
        with pytest.raises(TokenRefused):
            await issuer.user(before)  # its key was withdrawn with the rotation
    finally:
        await issuer.aclose()


async def test_unknown_keys_do_not_make_the_gateway_hammer_the_issuer(local_issuer: LocalIssuer) -> None:
    issuer = Issuer(local_issuer.url, local_issuer.audience, jwks_min_interval=3600.0)
    try:
        assert await issuer.user(local_issuer.token("gina@example.com"))
        reads = local_issuer.jwks_reads
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for n in range(20):
            with pytest.raises(TokenRefused):
                await issuer.user(jwt.encode(local_issuer.claims("gina@example.com"), stranger, algorithm="RS256",
                                             headers={"kid": f"k{n}"}))
        assert local_issuer.jwks_reads == reads
    finally:
        await issuer.aclose()


async def test_an_unreachable_issuer_is_a_failure_to_retry_not_a_refusal() -> None:
    issuer = Issuer("http://127.0.0.1:9", "eas-gateway")
    token = jwt.encode({"iss": "http://127.0.0.1:9", "aud": "eas-gateway", "exp": int(time.time()) + 60,
                        "email": "h@example.com"}, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                       algorithm="RS256", headers={"kid": "k"})
    try:
        with pytest.raises(UpstreamFailed):
            await issuer.user(token)
    finally:
        await issuer.aclose()


def test_only_public_key_algorithms_may_be_allowed() -> None:
    for wrong in ("HS256", "none", "RS256,HS512", ""):
        with pytest.raises(SystemExit):
            Settings.from_env({"EAS_OAUTH_ISSUER": "https://id.example", "EAS_OAUTH_AUDIENCE": "a",
                               "EAS_OAUTH_ALGORITHMS": wrong})
    with pytest.raises(SystemExit):
        Settings.from_env({"EAS_OAUTH_ISSUER": "https://id.example"})  # no audience
    with pytest.raises(SystemExit):
        Settings.from_env({"EAS_BASIC_AUTH": "off"})  # nobody could sign in
    assert Settings.from_env({"EAS_OAUTH_ISSUER": "https://id.example", "EAS_OAUTH_AUDIENCE": "a",
                              "EAS_OAUTH_ALGORITHMS": "PS256, EdDSA"}).oauth_algorithms == "PS256, EdDSA"


async def test_the_phones_token_goes_upstream_as_it_is() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"username": "ivy@example.com", "apiUrl": "/jmap/", "capabilities": {},
                                         "accounts": {"a1": {}}, "primaryAccounts": {"urn:ietf:params:jmap:mail": "a1"},
                                         "downloadUrl": "/d", "uploadUrl": "/u", "eventSourceUrl": "", "state": "0"})
    upstream = JMAPUpstream("http://jmap.test", transport=httpx.MockTransport(answer))
    try:
        await upstream.authenticate(Credentials("ivy@example.com", auth=BearerToken("the-phones-token")))
    finally:
        await upstream.aclose()
    assert seen == ["Bearer the-phones-token"]


async def test_oauth_users_get_no_imap_idle_they_have_no_password() -> None:
    idle = ImapIdle("imap://127.0.0.1:9")
    events = idle.events(Credentials("jo@example.com", auth=BearerToken("t")))
    with pytest.raises(AuthenticationFailed):
        await anext(events)
    assert idle.open == 0


def test_the_gateways_upstream_tokens_are_what_cyrus_takes() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = UpstreamSigner(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    token = signer.token("kim@example.com")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}  # Cyrus 3.6: these two, no more
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
    assert set(claims) == {"sub", "iat"} and claims["sub"] == "kim@example.com"
    assert signer.token("kim@example.com") == token  # reused for a minute, not signed per request
    with pytest.raises(ValueError):
        UpstreamSigner(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


# -- on the real upstream: a phone signed in with OAuth ---------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth_gateway(cyrus: str, database_url: str, local_issuer: LocalIssuer) -> Iterator[RunningGateway]:
    from tests.conftest import CYRUS_DIRS

    with running_gateway(cyrus, database_url, poll_seconds=0.5, dav_poll_seconds=0.5,
                         oauth_issuer=local_issuer.url, oauth_audience=local_issuer.audience,
                         upstream_jwt_key=str(CYRUS_DIRS[cyrus] / "upstream-jwt.pem")) as gw:
        yield gw


@pytest.mark.postgres
@pytest.mark.upstream
def test_a_phone_signed_in_with_oauth_syncs_mail_contacts_and_calendars(
        oauth_gateway: RunningGateway, local_issuer: LocalIssuer) -> None:
    user = new_user(oauth_gateway)
    phone = Phone(oauth_gateway, user, token=local_issuer.token(user))
    assert {"8", "9"} <= set(phone.types)  # the calendar and contacts folders: CalDAV/CardDAV with a signed token
    deliver(oauth_gateway, user, [message("by token")])
    _, adds = phone.sync_all(phone.inbox)
    assert [a.findtext(".//{Email:}Subject") for a in adds] == ["by token"]
    contacts = phone.types["9"]
    key, _ = phone.sync_all(contacts)
    commands = etree.Element(A + "Commands")
    add = etree.SubElement(commands, A + "Add")
    etree.SubElement(add, A + "ClientId").text = "c1"
    data = etree.SubElement(add, A + "ApplicationData")
    etree.SubElement(data, "{Contacts:}FirstName").text = "Oscar"
    etree.SubElement(data, "{Contacts:}LastName").text = "Auth"
    answer = phone.sync(collection(contacts, key, commands=commands))
    assert answer.findtext(f".//{A}Responses/{A}Add/{A}Status") == "1"  # written over CardDAV


@pytest.mark.postgres
@pytest.mark.upstream
def test_refusals_carry_both_challenges(oauth_gateway: RunningGateway, local_issuer: LocalIssuer) -> None:
    bare = httpx.options(oauth_gateway.endpoint, timeout=30)
    assert bare.status_code == 401
    challenges = bare.headers.get_list("www-authenticate")
    assert challenges[0] == 'Basic realm="ActiveSync"'
    assert challenges[1] == f'Bearer realm="ActiveSync", authorization_uri="{local_issuer.url}/authorize"' or \
        challenges[1] == 'Bearer realm="ActiveSync"'  # before the first token, the discovery document is unread
    user = new_user(oauth_gateway)
    expired = local_issuer.token(user, exp=int(time.time()) - 3600)
    refused = httpx.options(oauth_gateway.endpoint, headers={"Authorization": f"Bearer {expired}"}, timeout=30)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers.get_list("www-authenticate")[1]
    assert "authorization_uri" in refused.headers.get_list("www-authenticate")[1]
    good = httpx.options(oauth_gateway.endpoint, headers={"Authorization": f"Bearer {local_issuer.token(user)}"},
                         timeout=30)
    assert good.status_code == 200
    # A token for another user than User= is refused, as a password would be.
    other = post(oauth_gateway, "FolderSync", None, device_id="OAUTHX1", user=user,
                 token=local_issuer.token("alice@example.com"))
    assert other.status_code == 403
    # Passwords still sign in (EAS_BASIC_AUTH=on).
    assert httpx.options(oauth_gateway.endpoint, auth=(user, password(user)), timeout=30).status_code == 200


@pytest.mark.postgres
@pytest.mark.upstream
def test_passwords_can_be_switched_off(cyrus: str, database_url: str, local_issuer: LocalIssuer) -> None:
    from tests.conftest import CYRUS_DIRS

    with running_gateway(cyrus, database_url, oauth_issuer=local_issuer.url, oauth_audience=local_issuer.audience,
                         upstream_jwt_key=str(CYRUS_DIRS[cyrus] / "upstream-jwt.pem"), basic_auth="off") as gw:
        user = new_user(gw)
        refused = httpx.options(gw.endpoint, auth=(user, password(user)), timeout=30)
        assert refused.status_code == 401
        assert [c.split()[0] for c in refused.headers.get_list("www-authenticate")] == ["Bearer"]
        assert httpx.options(gw.endpoint, headers={"Authorization": f"Bearer {local_issuer.token(user)}"},
                             timeout=30).status_code == 200
        pox = httpx.post(gw.url + "/autodiscover/autodiscover.xml", timeout=30,
                         headers={"Authorization": f"Bearer {local_issuer.token(user)}", "Content-Type": "text/xml"},
                         content=_pox_request(user))
        assert pox.status_code == 200 and b"/Microsoft-Server-ActiveSync" in pox.content


def _pox_request(address: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">'
        f"<Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>"
        "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
        "</AcceptableResponseSchema></Request></Autodiscover>").encode()
