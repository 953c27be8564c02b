"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for upstream MCP servers that want a bearer
token rather than a fixed header.

A server's registration names a token endpoint, a client id, optionally a scope, and a client secret
(a workspace secret, as headers are; the operator's from an environment variable). The gateway asks
the token endpoint for a token (`grant_type=client_credentials`, the client authenticated with HTTP
Basic, id and secret form-encoded first, as section 2.3.1 requires servers to support), keeps it
until shortly before its `expires_in` (`REFRESH_MARGIN_S`, or a tenth of a short lifetime; a token
without `expires_in` is kept until the server refuses it), and sends it as `Authorization: Bearer`.
Concurrent requests for the same credentials share one fetch. When the MCP server answers 401 the
proxy drops the token (`forget`), fetches a new one once and retries.

A workspace's token URL is a tenant's: it passes the same egress rules as its server's URL (checked
when stored, before each fetch, and on every connection by the caller's guarded client). Nothing
here logs or raises with the secret or a token in it; errors name the server and the endpoint's
OAuth error code only (from the RFC's set; anything else is reported as `error`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

import aiohttp
import orjson

from sluicegate.secrets import Secret

log = logging.getLogger("sluicegate.mcp")
REFRESH_MARGIN_S = 30.0  # a token is replaced this long before it expires
MAX_TOKEN_BYTES = 64 * 1024  # the largest token response read
MAX_CACHED = 10_000  # (server, credentials) pairs kept
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """How the gateway obtains a bearer token for one upstream MCP server.

    Attributes:
        token_url: the authorization server's token endpoint.
        client_id: the gateway's client id there.
        client_secret: its secret (never shown, logged or sent anywhere but the token endpoint).
        scope: the scope asked for, if any.
    """

    token_url: str
    client_id: str
    client_secret: Secret
    scope: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """As the admin API shows it: everything but the secret."""
        return {"token_url": self.token_url, "client_id": self.client_id, "scope": self.scope}


class OAuthError(Exception):
    """No token could be had: the message names the server and why (never a secret or a token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class _Token:
    value: Secret
    renew_at: float | None  # on the clock; None: until refused


class OAuthTokens:
    """The bearer tokens of upstream MCP servers, fetched and kept per (where, credentials).

    Arguments:
        timeout_s: the longest a token request takes.
        clock: monotonic seconds (tests inject their own).
    """

    def __init__(self, timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        self._tokens: dict[tuple[str, str, str, str | None], _Token] = {}
        self._fetching: dict[tuple[str, str, str, str | None], asyncio.Future[_Token]] = {}

    @staticmethod
    def _key(where: str, creds: ClientCredentials) -> tuple[str, str, str, str | None]:
        return (where, creds.token_url, creds.client_id, creds.scope)

    async def token(self, http: aiohttp.ClientSession, where: str, name: str, creds: ClientCredentials) -> Secret:
        """A bearer token for the server `name` (kept under `where`: a workspace's server, or the
        operator's), fetched with `http` when none is kept or it is about to expire.

        Raises:
            OAuthError: the token endpoint could not be reached, refused, or answered no token.
        """
        key = self._key(where, creds)
        kept = self._tokens.get(key)
        if kept is not None and (kept.renew_at is None or self.clock() < kept.renew_at):
            return kept.value
        pending = self._fetching.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(http, name, creds))
            self._fetching[key] = pending
            pending.add_done_callback(lambda _: self._fetching.pop(key, None))
        token = await asyncio.shield(pending)
        if len(self._tokens) >= MAX_CACHED:
            self._tokens.clear()
        self._tokens[key] = token
        return token.value

    def forget(self, where: str, creds: ClientCredentials, token: Secret) -> None:
        """Drop `token` (the server refused it): the next request fetches another. A newer token,
        fetched meanwhile by another request, is kept."""
        key = self._key(where, creds)
        kept = self._tokens.get(key)
        if kept is not None and kept.value.reveal() == token.reveal():
            del self._tokens[key]

    async def _fetch(self, http: aiohttp.ClientSession, name: str, creds: ClientCredentials) -> _Token:
        form = {"grant_type": "client_credentials"}
        if creds.scope:
            form["scope"] = creds.scope
        basic = f"{quote_plus(creds.client_id)}:{quote_plus(creds.client_secret.reveal())}"
        headers = {"accept": "application/json", "authorization": "Basic " + base64.b64encode(basic.encode()).decode()}
        where = f"the token endpoint of the MCP server {name!r}"
        started = self.clock()
        try:
            async with asyncio.timeout(self.timeout_s):
                async with http.post(
                    creds.token_url,
                    data=form,
                    headers=headers,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    parts, size = [], 0
                    async for chunk in resp.content.iter_any():
                        parts.append(chunk)
                        size += len(chunk)
                        if size > MAX_TOKEN_BYTES:
                            break
                    raw = b"".join(parts)
        except TimeoutError:
            raise OAuthError(f"{where} did not answer within {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("mcp token endpoint of %s unreachable: %s", name, type(exc).__name__)
            raise OAuthError(f"{where} could not be reached") from None
        if len(raw) > MAX_TOKEN_BYTES:
            raise OAuthError(f"{where} answered more than {MAX_TOKEN_BYTES} bytes")
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if status != 200:
            code = body.get("error") if isinstance(body, dict) else None
            said = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "error"
            raise OAuthError(f"{where} refused the gateway's client credentials (HTTP {status}, {said})")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise OAuthError(f"{where} answered without an access token")
        kind = body.get("token_type")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise OAuthError(f"{where} answered a token that is not a bearer token")
        lifetime = body.get("expires_in")
        renew_at = None
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            renew_at = started + lifetime - min(REFRESH_MARGIN_S, lifetime / 10)
        return _Token(Secret(body["access_token"]), renew_at)
