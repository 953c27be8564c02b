"""AWS Bedrock's wire for the Anthropic models (Claude through InvokeModel and
InvokeModelWithResponseStream), behind a provider that speaks Anthropic's Messages format.

What differs from Anthropic's own API, all settled here, on the Bedrock provider's own path:

- **Where**: `POST {base}/model/{modelId}/invoke`, or `/invoke-with-response-stream` for a stream;
  the model id (`anthropic.claude-…-v2:0`, an inference profile `us.anthropic.…`, an ARN) is
  percent-encoded into its path segment.
- **The body**: Anthropic's Messages request without `model` and `stream` (the URL says both),
  with `anthropic_version: "bedrock-2023-05-31"`; the client's `anthropic-beta` header becomes
  the body's `anthropic_beta` list.
- **Signing**: AWS Signature Version 4 for the service `bedrock` in the provider's region, by
  botocore's own signer (`SigV4Auth`) over the exact body bytes sent: `Authorization`,
  `X-Amz-Date`, and `X-Amz-Security-Token` with temporary credentials.
- **Streams**: AWS event-stream framing (`application/vnd.amazon.eventstream`), parsed by
  botocore's `EventStreamBuffer` (prelude and message CRC32s checked): each `chunk` event's JSON
  payload carries `bytes`, the base64 of one Anthropic stream event, which goes to the client as
  that SSE event (`event: message_start` …); an exception message (`throttlingException`,
  `modelStreamErrorException`, …) becomes an Anthropic `error` event and ends the stream.
- **Errors**: `{"message": …}` with the exception's name in `x-amzn-errortype`; the client gets
  Anthropic's error shape (`rate_limit_error` for throttling, 429, so that SDKs back off and a
  route retries elsewhere).

botocore is imported by this module only, which `proxy.providers` imports only when a Bedrock
provider is configured: a gateway without one loads none of it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from sluicegate.errors import InvalidRequest, UpstreamError, UpstreamProtocolError
from sluicegate.formats.sse import encode
from sluicegate.proxy.upstream import Timeouts, Upstream, UpstreamResponse
from sluicegate.secrets import Secret

__all__ = [
    "ANTHROPIC_VERSION",
    "AwsCredentials",
    "Bedrock",
    "BedrockResponse",
    "EventStreamToSse",
    "bedrock_body",
    "error_body",
    "invoke_url",
]

ANTHROPIC_VERSION: Final = "bedrock-2023-05-31"
SIGNING_NAME: Final = "bedrock"
EVENT_STREAM: Final = "application/vnd.amazon.eventstream"
_MESSAGES_PATH: Final = "/v1/messages"
_FRAME_OVERHEAD: Final = 64 * 1024  # an event-stream message's prelude, headers and JSON wrapping, at most
_SECRET_FIELDS: Final = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

# Bedrock's exceptions (by `x-amzn-errortype` or an in-stream `:exception-type`, first letter in
# either case) as (Anthropic error type, status the client gets). The statuses are Bedrock's own,
# except a service quota (Bedrock: 400), which is a rate limit to wait out: 429.
_EXCEPTIONS: Final[dict[str, tuple[str, int]]] = {
    "throttlingexception": ("rate_limit_error", 429),
    "servicequotaexceededexception": ("rate_limit_error", 429),
    "modelnotreadyexception": ("overloaded_error", 429),
    "serviceunavailableexception": ("overloaded_error", 503),
    "internalserverexception": ("api_error", 500),
    "modeltimeoutexception": ("api_error", 408),
    "modelerrorexception": ("api_error", 424),
    "modelstreamerrorexception": ("api_error", 424),
    "validationexception": ("invalid_request_error", 400),
    "resourcenotfoundexception": ("not_found_error", 404),
    "accessdeniedexception": ("permission_error", 403),
    "invalidsignatureexception": ("permission_error", 403),
    "unrecognizedclientexception": ("permission_error", 403),
    "expiredtokenexception": ("permission_error", 403),
}
# Anthropic's error type for a status when Bedrock named no exception the table knows.
_BY_STATUS: Final = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An AWS access key (and a session token, for temporary credentials)."""

    access_key_id: Secret
    secret_access_key: Secret
    session_token: Secret | None = None

    @classmethod
    def from_secret(cls, secret: Secret) -> AwsCredentials:
        """The credentials of a workspace's provider secret: a JSON object with
        `aws_access_key_id`, `aws_secret_access_key` and, for temporary credentials,
        `aws_session_token`.

        Raises:
            UpstreamError: the secret is not that (`provider_not_configured`; the value is never said).
        """
        try:
            value: Any = orjson.loads(secret.reveal())
        except orjson.JSONDecodeError:
            value = None
        fields = [value.get(k) if isinstance(value, dict) else None for k in _SECRET_FIELDS]
        if not all(isinstance(f, str) and f for f in fields[:2]) or not isinstance(fields[2], str | None):
            raise UpstreamError(
                "the workspace's secret for a Bedrock provider must be a JSON object with aws_access_key_id and "
                "aws_secret_access_key (and aws_session_token for temporary credentials)",
                code="provider_not_configured",
            )
        key_id, secret_key, token = fields
        return cls(Secret(key_id), Secret(secret_key), Secret(token) if token else None)

    @classmethod
    def from_environ(cls, names: tuple[str, str, str | None], environ: Mapping[str, str]) -> AwsCredentials | str:
        """The credentials the variables `names` (key id, secret key, session token or None) hold,
        or what is missing (the variables' names, never a value)."""
        key_id, secret, token = (environ.get(name) or "" if name else "" for name in names)
        missing = [name for name, value in zip(names[:2], (key_id, secret), strict=True) if not value]
        if missing:
            return " and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set"
        return cls(Secret(key_id), Secret(secret), Secret(token) if token else None)


def invoke_url(base: str, model_id: str, stream: bool) -> str:
    """The InvokeModel (`stream`: InvokeModelWithResponseStream) URL of `model_id` below `base`;
    the id is percent-encoded whole (`:` and `/` of an ARN included): it cannot leave its segment."""
    action = "invoke-with-response-stream" if stream else "invoke"
    return f"{base}/model/{quote(model_id, safe='')}/{action}"


def bedrock_body(raw: bytes, anthropic_beta: str | None = None) -> tuple[bytes, bool]:
    """(Bedrock's request body, whether it streams) for an Anthropic Messages request body.

    Raises:
        InvalidRequest: the body is not a JSON object (the pipeline sends only objects).
    """
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    body.pop("model", None)
    stream = body.pop("stream", False) is True
    body["anthropic_version"] = ANTHROPIC_VERSION
    if anthropic_beta:
        betas = [b.strip() for b in anthropic_beta.split(",") if b.strip()]
        if betas:
            body["anthropic_beta"] = betas
    return orjson.dumps(body), stream


def _exception_name(value: str | None) -> str:
    """An exception's name from `x-amzn-errortype` (`ThrottlingException:http://internal…`) or a
    body's `__type` (`com.amazon.coral.service#ThrottlingException`)."""
    if not value:
        return ""
    return value.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def error_body(status: int, raw: bytes, errortype: str | None) -> tuple[int, bytes]:
    """(status, Anthropic error body) for a Bedrock error answer: `raw` is its JSON body
    (`{"message": …}`), `errortype` its `x-amzn-errortype` header."""
    try:
        parsed: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    message = None
    if isinstance(parsed, dict):
        message = parsed.get("message", parsed.get("Message"))
        errortype = errortype or parsed.get("__type")
    name = _exception_name(errortype)
    kind, mapped = _EXCEPTIONS.get(name.lower(), ("", status))
    if not kind:
        kind = _BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    text = f"{name or 'Bedrock error'}: {message}" if isinstance(message, str) else f"Bedrock answered {status}"
    return mapped, orjson.dumps({"type": "error", "error": {"type": kind, "message": text}})


def _error_event(kind: str, message: str) -> bytes:
    return encode(orjson.dumps({"type": "error", "error": {"type": kind, "message": message}}), b"error")


class EventStreamToSse:
    """Bedrock's event stream as Anthropic's SSE events, as its bytes arrive (`feed`, then
    `finish`): a frame cut anywhere gives the same events as the whole stream.

    Arguments:
        max_event: the largest event (`upstream.max_event_bytes`); a message whose frame may not
            hold one (its base64 and JSON wrapping allowed for) is refused before it is buffered
            further.
    """

    __slots__ = ("_buffer", "_max_frame", "_pending", "ended")

    def __init__(self, max_event: int = 8 * 1024 * 1024) -> None:
        self._max_frame = max_event * 4 // 3 + _FRAME_OVERHEAD
        self._buffer = EventStreamBuffer()
        self._pending = 0  # bytes fed that no complete message has taken yet
        self.ended = False  # an exception ended the stream: anything after it is not relayed

    def feed(self, data: bytes) -> bytes:
        """The SSE bytes of the messages `data` completes (b"" while a frame is still partial).

        Raises:
            UpstreamProtocolError: a frame's checksum or lengths are wrong, or a chunk is not the
                base64 of a JSON event.
        """
        if self.ended:
            return b""
        self._buffer.add_data(data)
        self._pending += len(data)
        out: list[bytes] = []
        try:
            for message in self._buffer:
                self._pending -= message.prelude.total_length
                out.append(self._event(message))
                if self.ended:
                    break
        except ParserError as exc:
            raise UpstreamProtocolError(f"the provider's event stream is damaged ({type(exc).__name__})") from None
        if self._pending > self._max_frame:
            raise UpstreamProtocolError(
                "the provider sent a stream event larger than upstream.max_event_bytes", code="upstream_event_too_large"
            )
        return b"".join(out)

    def finish(self) -> None:
        """The stream's end: a frame left incomplete means the stream was cut.

        Raises:
            UpstreamProtocolError: bytes of an incomplete frame are left.
        """
        if not self.ended and self._pending:
            raise UpstreamProtocolError("the provider's event stream ended inside a frame")

    def _event(self, message: EventStreamMessage) -> bytes:
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "event":
            if headers.get(":event-type") != "chunk":
                return b""  # an event Anthropic's stream has no counterpart for
            return _chunk(message.payload)
        self.ended = True
        if kind == "exception":
            name = str(headers.get(":exception-type") or "")
            try:
                said = orjson.loads(message.payload)
            except orjson.JSONDecodeError:
                said = None
            text = said.get("message") if isinstance(said, dict) else None
            error_kind, _ = _EXCEPTIONS.get(name.lower(), ("api_error", 0))
            return _error_event(error_kind, f"{name or 'exception'}: {text if isinstance(text, str) else 'no message'}")
        code, text = headers.get(":error-code"), headers.get(":error-message")
        return _error_event("api_error", f"{code or 'error'}: {text or 'no message'}")


def _chunk(payload: bytes) -> bytes:
    """The SSE event of a `chunk` payload (`{"bytes": "<base64 of one Anthropic event>"}`)."""
    try:
        part = orjson.loads(payload)
        data = base64.b64decode(part["bytes"], validate=True)
        event = orjson.loads(data)
        name = event["type"]
    except (orjson.JSONDecodeError, binascii.Error, KeyError, TypeError, ValueError):
        raise UpstreamProtocolError("the provider sent a stream chunk that is not one JSON event") from None
    if not isinstance(name, str) or not name or "\n" in name or "\r" in name:
        raise UpstreamProtocolError("the provider sent a stream event without a type")
    if b"\n" in data or b"\r" in data:  # pretty-printed: one line for the SSE `data:` field
        data = orjson.dumps(event)
    return encode(data, name.encode())


class BedrockResponse:
    """A Bedrock answer as the relay reads an Anthropic one (an `UpstreamResponse`): an event
    stream as SSE events, an error as Anthropic's error body (and status), a Messages body as
    it is."""

    __slots__ = ("_errortype", "_inner", "_max_event", "_stream", "content_type", "status")

    def __init__(self, inner: UpstreamResponse, max_event: int) -> None:
        self._inner = inner
        self._max_event = max_event
        self.status = inner.status
        self.content_type = inner.content_type
        self._errortype: str | None = None
        self._stream = inner.status < 400 and inner.content_type.startswith(EVENT_STREAM)
        if self._stream:
            self.content_type = "text/event-stream"
        elif inner.status >= 400:
            self._errortype = inner.header("x-amzn-errortype")
            name = _exception_name(self._errortype).lower()
            self.status = _EXCEPTIONS.get(name, ("", inner.status))[1]
            self.content_type = "application/json"

    def header(self, name: str) -> str | None:
        return self._inner.header(name)

    def header_items(self) -> Iterable[tuple[str, str]]:
        """What of Bedrock's headers an Anthropic client reads: its request id, as `request-id`
        (Bedrock sends no rate-limit headers)."""
        request_id = self._inner.header("x-amzn-requestid")
        return [("request-id", request_id)] if request_id is not None else []

    async def chunks(self) -> AsyncIterator[bytes]:
        if not self._stream:
            if self.status >= 400:
                yield await self.read()
                return
            async for chunk in self._inner.chunks():
                yield chunk
            return
        events = EventStreamToSse(self._max_event)
        async for chunk in self._inner.chunks():
            out = events.feed(chunk)
            if out:
                yield out
            if events.ended:
                self._inner.close()  # nothing after an exception is relayed
                return
        events.finish()

    async def read(self, limit: int | None = None) -> bytes:
        if self._inner.status < 400:
            return await self._inner.read(limit)
        raw = await self._inner.read(limit)
        _, body = error_body(self._inner.status, raw, self._errortype)
        return body if limit is None else body[:limit]

    def close(self) -> None:
        self._inner.close()


class Bedrock:
    """How a Bedrock provider sends a call: its URL, body and signature, and its answer read as
    Anthropic's (see the module docstring).

    Arguments:
        name: the provider's name (for errors).
        region: the AWS region calls are signed for.
        credentials: the AWS credentials, or what is missing from the environment (a call is then
            refused with that, naming the variables).
        max_event: the largest stream event relayed (`upstream.max_event_bytes`).
    """

    __slots__ = ("_auth", "_max_event", "_missing", "name", "region")

    def __init__(
        self, name: str, region: str, credentials: AwsCredentials | str, max_event: int = 8 * 1024 * 1024
    ) -> None:
        self.name = name
        self.region = region
        self._max_event = max_event
        self._missing = credentials if isinstance(credentials, str) else None
        self._auth = self._signer(credentials) if isinstance(credentials, AwsCredentials) else None

    def _signer(self, credentials: AwsCredentials) -> SigV4Auth:
        token = credentials.session_token.reveal() if credentials.session_token is not None else None
        creds = Credentials(credentials.access_key_id.reveal(), credentials.secret_access_key.reveal(), token)
        return SigV4Auth(creds, SIGNING_NAME, self.region)

    def signed_headers(
        self, url: str, headers: Mapping[str, str], body: bytes, secret: Secret | None = None
    ) -> dict[str, str]:
        """`headers` with the SigV4 signature of a POST of `body` to `url` (botocore's signer:
        `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token` with a session token), by the
        workspace's credentials (`secret`, see `AwsCredentials.from_secret`) or the provider's.

        Raises:
            UpstreamError: no credentials, or a workspace secret that is not AWS credentials
                (`provider_not_configured`, naming the variables, never a value).
        """
        auth = self._auth if secret is None else self._signer(AwsCredentials.from_secret(secret))
        if auth is None:
            raise UpstreamError(
                f"provider {self.name!r} has no AWS credentials: {self._missing}", code="provider_not_configured"
            )
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        auth.add_auth(request)
        return dict(request.headers.items())

    def send(
        self,
        upstream: Upstream,
        path: str,
        url: str | None,
        headers: dict[str, str],
        raw: bytes,
        timeouts: Timeouts,
        whole: bool,
        secret: Secret | None = None,
    ) -> Awaitable[UpstreamResponse]:
        """Send an Anthropic Messages request (`raw`, for the client `path`) to Bedrock at `url`
        (the model's InvokeModel URL) through `upstream`, signed with the workspace's credentials
        (`secret`) or the provider's; awaited, the answer read as Anthropic's.

        Raises:
            InvalidRequest: the client path is not `/v1/messages` (count_tokens is not served).
        """
        if path != _MESSAGES_PATH:
            raise InvalidRequest(
                f"{path} is not served by the Bedrock provider {self.name!r}", code="unsupported_endpoint"
            )
        assert url is not None
        body, stream = bedrock_body(raw, headers.pop("anthropic-beta", None))
        if stream:
            url = url.removesuffix("/invoke") + "/invoke-with-response-stream"
            headers["accept"] = EVENT_STREAM
        else:
            headers["accept"] = "application/json"
        headers.pop("authorization", None)  # a workspace's secret as `Provider.headers` put it: signed with instead
        signed = self.signed_headers(url, headers, body, secret)
        return self._answer(upstream.send(url, path, signed, body, timeouts, whole=whole))

    async def _answer(self, sent: Awaitable[UpstreamResponse]) -> UpstreamResponse:
        return BedrockResponse(await sent, self._max_event)
