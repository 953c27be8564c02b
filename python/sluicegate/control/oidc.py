"""Single sign-on to the admin console with OpenID Connect (authorization code + PKCE).

`GET /admin/ui/sso/login` reads the issuer's discovery document (cached), keeps a fresh state,
nonce and PKCE verifier (S256) on this instance for a few minutes, binds them to the browser with a
short-lived HttpOnly cookie, and redirects to the issuer. `GET /admin/ui/sso/callback` checks the
state (once only), exchanges the code at the token endpoint (`client_secret_basic` or
`client_secret_post`, as the issuer says), verifies the ID token (RS256/PS256/ES256 signature
against the issuer's JWKS, `iss`, `aud`/`azp`, `exp`/`iat` with a small leeway, `nonce`), maps its
claims to a scope and role with the first matching rule, and opens a server-side session: a random
id in the HttpOnly `sg_session` cookie (SameSite=Strict, Path=/admin, Secure over TLS), only its
hash kept in memory.

Sessions and pending sign-ins live in this process's memory: they do not survive a restart and are
per instance (behind several instances, route a client to the same one, or sign in again).

The admin API accepts the session cookie instead of a bearer token; every change made with it
needs the session's CSRF token in `x-csrf-token` and an `Origin` (or `Referer`) of the console's own
origin. Nothing here logs or records a token, code, cookie or claim value beyond the subject.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sluicegate.secrets import Secret

SESSION_COOKIE = "sg_session"
STATE_COOKIE = "sg_sso"
STATE_TTL_S = 600.0
MAX_PENDING = 10_000
MAX_SESSIONS = 100_000
HTTP_TIMEOUT_S = 10.0
JWKS_REFRESH_S = 10.0


class ClaimRule(BaseModel):
    """One rule of `[[control.oidc.rules]]`: a claim's value that grants a scope and a role.

    The claim matches when it equals `value`, or when it is a list containing `value`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1, max_length=500)
    org_id: str = Field(min_length=1)
    workspace_id: str | None = None
    role: str = Field("admin", pattern="^(admin|viewer)$")

    def matches(self, claims: dict[str, Any]) -> bool:
        got = claims.get(self.claim)
        if isinstance(got, list):
            return self.value in [str(v) for v in got if isinstance(v, str | int)]
        return isinstance(got, str | int) and not isinstance(got, bool) and str(got) == self.value


class OidcSettings(BaseModel):
    """`[control.oidc]`: sign-in to the console with an OpenID provider.

    Attributes:
        issuer: the issuer URL (its `/.well-known/openid-configuration` is read; `iss` must equal it).
        client_id: this gateway's client at the issuer.
        client_secret: its secret (prints as *****).
        redirect_base_url: the console's public origin, e.g. `https://gateway.example.com`; the
            redirect URI is `<redirect_base_url>/admin/ui/sso/callback`, and a change made with a
            session must come from this origin.
        token_endpoint_auth_method: how this client authenticates at the token endpoint (as
            registered at the issuer); unset, `client_secret_basic` if the issuer supports it, else
            `client_secret_post`.
        scopes: asked for (`openid` is always included).
        rules: claim rules, first match wins; a user no rule matches is refused.
        session_ttl_s: how long a session lasts.
        leeway_s: clock skew allowed on `exp` and `iat`.
        discovery_ttl_s: how long the discovery document and the JWKS are cached.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: Secret
    redirect_base_url: str
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    rules: list[ClaimRule] = Field(min_length=1)
    session_ttl_s: float = Field(8 * 3600.0, gt=0, le=7 * 86400)
    leeway_s: float = Field(60.0, ge=0, le=600)
    discovery_ttl_s: float = Field(3600.0, ge=0)

    @field_validator("issuer", "redirect_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @property
    def redirect_uri(self) -> str:
        return self.redirect_base_url + "/admin/ui/sso/callback"

    @property
    def origin(self) -> str:
        parts = urlsplit(self.redirect_base_url)
        return f"{parts.scheme}://{parts.netloc}"


class SignInError(Exception):
    """A refused sign-in; the message names the kind of failure only (no token, code or claim)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_unb64url(text), "big")


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384}
_HASHES["512"] = hashes.SHA512
_CURVES = {"ES256": ("P-256", 32), "ES384": ("P-384", 48), "ES512": ("P-521", 66)}


def verify_signature(token: str, jwks: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS whose signature one of `jwks`'s keys checks.

    Raises:
        SignInError: malformed, an algorithm other than RS*/PS*/ES*, no key, or a bad signature.
    """
    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        header = orjson.loads(_unb64url(head_b64))
        claims = orjson.loads(_unb64url(body_b64))
        signature = _unb64url(sig_b64)
    except ValueError:
        raise SignInError("malformed ID token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise SignInError("malformed ID token")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg[:2] not in ("RS", "PS", "ES") or alg[2:] not in _HASHES:
        raise SignInError("ID token algorithm not accepted")
    kid = header.get("kid")
    want_kty = "EC" if alg.startswith("ES") else "RSA"
    keys = [k for k in jwks if k.get("kty") == want_kty and (kid is None or k.get("kid") == kid)]
    keys = [k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    if not keys:
        raise SignInError("no issuer key for the ID token")
    signed = f"{head_b64}.{body_b64}".encode()
    digest = _HASHES[alg[2:]]()
    for jwk in keys:
        try:
            if want_kty == "RSA":
                rsa_key = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
                pss = padding.PSS(padding.MGF1(digest), digest.digest_size)
                pad: padding.AsymmetricPadding = padding.PKCS1v15() if alg.startswith("RS") else pss
                rsa_key.verify(signature, signed, pad, digest)
            else:
                crv, size = _CURVES[alg]
                if jwk.get("crv") != crv or len(signature) != 2 * size:
                    continue
                curves: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
                curve = curves.get(crv) or ec.SECP521R1()
                ec_key = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
                r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
                der = encode_dss_signature(r, s)
                ec_key.verify(der, signed, ec.ECDSA(digest))
            return header, claims
        except (InvalidSignature, KeyError, ValueError, TypeError):
            continue
    raise SignInError("ID token signature does not verify")


def check_claims(claims: dict[str, Any], issuer: str, client_id: str, nonce: str, now: float, leeway_s: float) -> None:
    """The ID token's claims (OpenID Connect Core 3.1.3.7), signature already checked.

    Raises:
        SignInError: a wrong issuer, audience or nonce, an expired token, or one issued in the future.
    """
    if claims.get("iss") != issuer:
        raise SignInError("ID token issuer mismatch")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if client_id not in auds:
        raise SignInError("ID token audience mismatch")
    if len(auds) > 1 and claims.get("azp") != client_id:
        raise SignInError("ID token authorized party mismatch")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or now > exp + leeway_s:
        raise SignInError("ID token expired")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + leeway_s:
        raise SignInError("ID token issued in the future")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise SignInError("ID token nonce mismatch")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise SignInError("ID token without subject")


@dataclass(slots=True)
class Pending:
    """A sign-in under way (by its state)."""

    nonce: str
    verifier: str
    browser: str  # the hash of the value in the browser's `sg_sso` cookie
    expires: float


@dataclass(slots=True)
class Session:
    """A signed-in console user."""

    subject: str  # `sso/<issuer host>/<sub>`: the audit rows' actor
    org_id: str
    workspace_id: str | None
    role: str
    csrf: str
    expires: float
    email: str | None = None


@dataclass(slots=True)
class Issuer:
    """The issuer's discovery document and keys, cached."""

    meta: dict[str, Any] = field(default_factory=dict)
    jwks: list[dict[str, Any]] = field(default_factory=list)
    fetched: float = -1e18


class Sso:
    """Sign-in with the issuer of `settings`, and the sessions of this instance.

    Arguments:
        settings: `[control.oidc]`.
        clock: seconds (`time.time` by default; the tests' clock).
    """

    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.issuer = Issuer()
        self.pending: dict[str, Pending] = {}
        self.sessions: dict[str, Session] = {}  # by the hash of the session id

    @property
    def issuer_host(self) -> str:
        return urlsplit(self.settings.issuer).netloc

    async def _get_json(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        async with session.get(url, headers={"accept": "application/json"}) as resp:
            if resp.status != 200:
                raise SignInError(f"the issuer answered {resp.status}")
            data = orjson.loads(await resp.read())
        if not isinstance(data, dict):
            raise SignInError("the issuer's answer is not a JSON object")
        return data

    async def discover(self, force: bool = False) -> Issuer:
        """The discovery document and JWKS, fetched at most every `discovery_ttl_s` (or when forced)."""
        now = self.clock()
        if not force and now - self.issuer.fetched < self.settings.discovery_ttl_s and self.issuer.meta:
            return self.issuer
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            meta = await self._get_json(http, self.settings.issuer + "/.well-known/openid-configuration")
            if meta.get("issuer") != self.settings.issuer:
                raise SignInError("the discovery document names another issuer")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(meta.get(name), str):
                    raise SignInError(f"the discovery document has no {name}")
            jwks = await self._get_json(http, meta["jwks_uri"])
        keys = jwks.get("keys")
        self.issuer = Issuer(meta, [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else [], now)
        return self.issuer

    def _expire(self) -> None:
        now = self.clock()
        for state in [s for s, p in self.pending.items() if p.expires <= now]:
            del self.pending[state]
        if len(self.sessions) >= MAX_SESSIONS:
            for key in [k for k, s in self.sessions.items() if s.expires <= now]:
                del self.sessions[key]

    async def begin(self) -> tuple[str, str]:
        """(the issuer's authorization URL, the value of the browser's `sg_sso` cookie)."""
        issuer = await self.discover()
        self._expire()
        while len(self.pending) >= MAX_PENDING:  # a flood of starts pushes out the oldest, never refuses
            del self.pending[next(iter(self.pending))]
        state, nonce, verifier, browser = (secrets.token_urlsafe(32) for _ in range(4))
        self.pending[state] = Pending(nonce, verifier, _hash(browser), self.clock() + STATE_TTL_S)
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        scopes = ["openid", *(s for s in self.settings.scopes if s != "openid")]
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        endpoint = issuer.meta["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query, quote_via=quote), browser

    async def finish(self, params: dict[str, str], browser: str | None) -> tuple[str, Session]:
        """Check the callback, exchange its code, verify the ID token, and map its claims.

        Returns:
            (the new session's id, for the cookie; the session) — the session is stored when the
            caller, having checked the scope exists, calls `open`.

        Raises:
            SignInError: any failure (the kind only in the message).
        """
        state = params.get("state", "")
        pending = self.pending.pop(state, None) if state else None
        if pending is None or pending.expires <= self.clock():
            raise SignInError("unknown or expired state")
        if browser is None or not hmac.compare_digest(_hash(browser), pending.browser):
            raise SignInError("the sign-in was started in another browser")
        if "error" in params:
            raise SignInError("the issuer refused the sign-in")
        if "iss" in params and params["iss"] != self.settings.issuer:
            raise SignInError("the response names another issuer")
        code = params.get("code", "")
        if not code:
            raise SignInError("no code")
        issuer = await self.discover()
        tokens = await self._exchange(issuer, code, pending.verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("no ID token")
        claims = await self.verify(id_token, pending.nonce)
        return self.session_for(claims)

    async def _exchange(self, issuer: Issuer, code: str, verifier: str) -> dict[str, Any]:
        s = self.settings
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": s.redirect_uri}
        form["code_verifier"] = verifier
        headers = {"accept": "application/json"}
        methods = issuer.meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if s.token_endpoint_auth_method is not None:
            methods = [s.token_endpoint_auth_method]
        if "client_secret_basic" in methods:
            pair = f"{quote(s.client_id, safe='')}:{quote(s.client_secret.reveal(), safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif "client_secret_post" in methods:
            form |= {"client_id": s.client_id, "client_secret": s.client_secret.reveal()}
        else:
            raise SignInError("the issuer supports neither client_secret_basic nor client_secret_post")
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(issuer.meta["token_endpoint"], data=form, headers=headers) as resp,
        ):
            body = await resp.read()
            if resp.status != 200:
                raise SignInError(f"the token endpoint answered {resp.status}")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SignInError("the token endpoint's answer is not JSON") from None
        if not isinstance(data, dict):
            raise SignInError("the token endpoint's answer is not a JSON object")
        return data

    async def verify(self, id_token: str, nonce: str, now: float | None = None) -> dict[str, Any]:
        """The claims of an ID token this client was issued (signature, then claims checked).

        An unknown key id makes the JWKS be fetched again once (the issuer rotated its keys), at
        most every `JWKS_REFRESH_S`.
        """
        issuer = await self.discover()
        try:
            _, claims = verify_signature(id_token, issuer.jwks)
        except SignInError as exc:
            # An unknown key: the issuer may have rotated (looked up again at most every 10 s).
            if "no issuer key" not in str(exc) or self.clock() - self.issuer.fetched < JWKS_REFRESH_S:
                raise
            issuer = await self.discover(force=True)
            _, claims = verify_signature(id_token, issuer.jwks)
        s = self.settings
        check_claims(claims, s.issuer, s.client_id, nonce, self.clock() if now is None else now, s.leeway_s)
        return claims

    def session_for(self, claims: dict[str, Any]) -> tuple[str, Session]:
        """A new session for verified claims, by the first matching rule (not yet stored)."""
        rule = next((r for r in self.settings.rules if r.matches(claims)), None)
        if rule is None:
            raise SignInError("no rule matches the user's claims")
        subject = f"sso/{self.issuer_host}/{claims['sub']}"
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        session_id = secrets.token_urlsafe(32)
        expires = self.clock() + self.settings.session_ttl_s
        return session_id, Session(
            subject, rule.org_id, rule.workspace_id, rule.role, secrets.token_urlsafe(32), expires, email
        )

    def open(self, session_id: str, session: Session) -> None:
        self._expire()
        while len(self.sessions) >= MAX_SESSIONS:  # the oldest session goes
            del self.sessions[next(iter(self.sessions))]
        self.sessions[_hash(session_id)] = session

    def session(self, session_id: str | None) -> Session | None:
        """The live session of a cookie's value, or None."""
        if not session_id:
            return None
        found = self.sessions.get(_hash(session_id))
        if found is None:
            return None
        if found.expires <= self.clock():
            self.sessions.pop(_hash(session_id), None)
            return None
        return found

    def close(self, session_id: str | None) -> bool:
        return bool(session_id) and self.sessions.pop(_hash(session_id or ""), None) is not None

    def same_origin(self, origin: str | None, referer: str | None) -> bool:
        """Whether a change comes from the console's own origin (`Origin`, else `Referer`)."""
        want = self.settings.origin.lower()
        if origin:
            return origin.rstrip("/").lower() == want
        if referer:
            parts = urlsplit(referer)
            return f"{parts.scheme}://{parts.netloc}".lower() == want
        return False


def csrf_ok(session: Session, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(session.csrf.encode(), (header or "").encode())
