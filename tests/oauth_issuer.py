"""A local OpenID issuer for the OAuth tests: its own keys, its discovery document and JWKS
served over HTTP on loopback, and the tokens it signs (or that an attacker forges)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


class LocalIssuer:
    def __init__(self, audience: str = "eas-gateway") -> None:
        self.audience = audience
        self.keys: dict[str, Any] = {}  # kid -> private key; the public halves are published
        self.current = self.add_key()
        self.jwks_reads = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                            "authorization_endpoint": issuer.url + "/authorize",
                            "token_endpoint": issuer.url + "/token"}
                elif self.path == "/jwks":
                    issuer.jwks_reads += 1
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_key(self, kind: str = "RSA") -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "RSA" \
            else ec.generate_private_key(ec.SECP256R1())
        return kid

    def rotate(self) -> str:
        """A new signing key replaces the current one, which is withdrawn."""
        old = self.current
        self.current = self.add_key()
        del self.keys[old]
        return self.current

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            public = key.public_key()
            entry = json.loads(RSAAlgorithm.to_jwk(public) if isinstance(key, rsa.RSAPrivateKey)
                               else ECAlgorithm.to_jwk(public))
            entry.update(kid=kid, use="sig")
            out.append(entry)
        return {"keys": out}

    def claims(self, user: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "sub": uuid.uuid4().hex, "email": user,
                  "iat": now, "nbf": now, "exp": now + 3600}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, user: str, *, kid: str | None = None, alg: str | None = None, **overrides: Any) -> str:
        kid = kid or self.current
        key = self.keys[kid]
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(self.claims(user, **overrides), key, algorithm=alg, headers={"kid": kid})
