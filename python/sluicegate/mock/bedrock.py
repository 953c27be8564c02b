"""AWS Bedrock's runtime wire for the Anthropic models, as the mock answers it (granian:
`--factory sluicegate.mock.bedrock:create_app`).

Routes (anything else: 404 `UnknownOperationException`):

- `POST /model/{modelId}/invoke`: InvokeModel, an Anthropic Messages body answered with the
  Messages response JSON;
- `POST /model/{modelId}/invoke-with-response-stream`: InvokeModelWithResponseStream, answered in
  AWS event-stream framing (`application/vnd.amazon.eventstream`): one `chunk` event per Anthropic
  stream event, its JSON payload `{"bytes": "<base64 of the event's JSON>"}`, each message with
  its prelude and message CRC32s;
- `/mock/…` as the plain mock.

Every call's AWS Signature Version 4 is checked the way Bedrock checks it, by recomputing it with
botocore's signer for the request as received (its path, the headers it says it signed, its body
bytes) and the secret of the key id it names (`CREDENTIALS`): an unknown key id is a 403
`UnrecognizedClientException`, a signature that differs (a wrong secret, a body changed after
signing) a 403 `InvalidSignatureException`, a missing one a 403 `MissingAuthenticationTokenException`.
A key with a session token needs that token in `X-Amz-Security-Token`.

The body must be what Bedrock takes: `anthropic_version: "bedrock-2023-05-31"` and no `model` or
`stream` (400 `ValidationException` otherwise). What passes goes to `respond()` as a plain
`/v1/messages` call for the model the path names, so every knob works in the model id
(`mock-claude@fault=429`, percent-encoded in the path); `STATS.last_request` then holds the
Bedrock path, the headers and the body as they came. The plain mock's errors come back as
Bedrock's (`{"message": …}` with `x-amzn-ErrorType`): a 429 as `ThrottlingException`, 503 and
529 as `ServiceUnavailableException`, 500 as `InternalServerException`, 400 as
`ValidationException`; the `error_event` stream fault as an in-stream `modelStreamErrorException`
exception message. A stream's `message_stop` carries `amazon-bedrock-invocationMetrics`, as
Bedrock's does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import struct
from typing import Any, Final
from urllib.parse import unquote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.types import ASGIApp, Scope

from sluicegate.mock.app import MockResponse, respond, serve
from sluicegate.mock.reply import next_serial
from sluicegate.mock.vendor import RewrittenStream, json_answer, read_whole, record, with_body

__all__ = ["CREDENTIALS", "create_app", "encode_message", "respond_bedrock"]

# The test credentials the mock knows: key id -> (secret access key, session token or None).
CREDENTIALS: Final[dict[str, tuple[str, str | None]]] = {
    "AKIAMOCKBEDROCK0000A": ("mock/bedrock+secret-key-0000000000000000A", None),
    "ASIAMOCKBEDROCK0000B": ("mock/bedrock+secret-key-0000000000000000B", "mock-session-token-" + "s" * 40),
}
ANTHROPIC_VERSION: Final = "bedrock-2023-05-31"
_PATH: Final = re.compile(r"/model/([^/]+)/(invoke|invoke-with-response-stream)")
_AUTH: Final = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request, ?"
    r"SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})"
)
_CORAL: Final = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
# The plain mock's error status -> Bedrock's exception and message (None: the plain mock's message).
_ERRORS: Final[dict[int, tuple[str, str | None]]] = {
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
    529: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
    500: ("InternalServerException", None),
    400: ("ValidationException", None),
    404: ("ResourceNotFoundException", None),
}


def _error(status: int, name: str, message: str) -> MockResponse:
    """Bedrock's error answer: `{"message": …}`, the exception named in `x-amzn-ErrorType`."""
    headers = (("x-amzn-errortype", name + _CORAL), ("x-amzn-requestid", f"mock-{next_serial()}"))
    return json_answer(status, {"message": message}, headers)


def _verify(raw_path: str, headers: dict[str, str], body: bytes) -> MockResponse | None:
    """None when the request's SigV4 signature is right, else Bedrock's 403."""
    auth = headers.get("authorization")
    if not auth:
        return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.fullmatch(auth)
    if match is None:
        return _error(400, "IncompleteSignatureException", "Authorization header requires well-formed parts.")
    key_id, day, region, service, signed, signature = match.groups()
    known = CREDENTIALS.get(key_id)
    if known is None:
        return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    secret, token = known
    if token is not None and headers.get("x-amz-security-token") != token:
        return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if service != "bedrock":
        return _error(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'.")
    stamp = headers.get("x-amz-date", "")
    names = signed.split(";")
    if not stamp.startswith(day) or "host" not in names or any(name not in headers for name in names):
        return _error(403, "InvalidSignatureException", _MISMATCH)
    request = AWSRequest(
        method="POST", url=f"http://{headers['host']}{raw_path}", data=body, headers={n: headers[n] for n in names}
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret, token), service, region)
    if signer.signed_headers(signer.headers_to_sign(request)) != signed:
        return _error(403, "InvalidSignatureException", _MISMATCH)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, signature):
        return _error(403, "InvalidSignatureException", _MISMATCH)
    return None


def _header(name: str, value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", 7, len(raw)) + raw


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total and headers lengths) and its CRC32, string
    headers, the payload, the message's CRC32."""
    head = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack("!II", 16 + len(head) + len(payload), len(head))
    start = prelude + struct.pack("!I", binascii.crc32(prelude)) + head + payload
    return start + struct.pack("!I", binascii.crc32(start))


def chunk_message(event: bytes) -> bytes:
    """The `chunk` event message of one Anthropic stream event's JSON."""
    payload = orjson.dumps({"bytes": base64.b64encode(event).decode()})
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, payload)


def exception_message(name: str, message: str) -> bytes:
    """An in-stream exception message (`modelStreamErrorException`, `throttlingException`, …)."""
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, orjson.dumps({"message": message}))


class _Frames:
    """The plain mock's Anthropic SSE events as Bedrock's event-stream messages."""

    __slots__ = ("_input",)

    def __init__(self) -> None:
        self._input = 0

    def __call__(self, event: bytes | None) -> list[bytes]:
        if event is None:
            return []
        name, _, data = event.partition(b"\ndata: ")
        data = data.rstrip(b"\n")
        if name == b"event: error":
            try:
                said = orjson.loads(data)["error"]["message"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                said = "error"
            return [exception_message("modelStreamErrorException", f"{said} (mock)")]
        try:
            parsed: Any = orjson.loads(data)
        except orjson.JSONDecodeError:  # the `malformed` fault: sent as it is
            return [chunk_message(data)]
        if isinstance(parsed, dict):
            if parsed.get("type") == "message_start":
                self._input = int(((parsed.get("message") or {}).get("usage") or {}).get("input_tokens") or 0)
            if parsed.get("type") == "message_stop":
                metrics = {"inputTokenCount": self._input, "outputTokenCount": 0, "invocationLatency": 1}
                data = orjson.dumps({**parsed, "amazon-bedrock-invocationMetrics": metrics})
        return [chunk_message(data)]


async def respond_bedrock(scope: Scope, headers: dict[str, str], body: bytes) -> MockResponse:
    """Answer one request as Bedrock's runtime would (see the module docstring)."""
    method = scope["method"]
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    if path.startswith("/mock/"):
        return await respond(method, path, headers, body)
    query = scope.get("query_string", b"").decode("latin-1")
    record(method, path, query, headers, body)
    match = _PATH.fullmatch(path)
    if method != "POST" or match is None:
        return _error(404, "UnknownOperationException", "Unknown operation")
    refused = _verify(path + (f"?{query}" if query else ""), headers, body)
    if refused is not None:
        return refused
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        req = None
    if not isinstance(req, dict):
        return _error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
    for key in ("model", "stream"):
        if key in req:
            return _error(
                400,
                "ValidationException",
                f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input "
                "and try again.",
            )
    if req.get("anthropic_version") != ANTHROPIC_VERSION:
        return _error(400, "ValidationException", "Invalid API version: anthropic_version must be bedrock-2023-05-31")
    stream = match[2] == "invoke-with-response-stream"
    plain = {k: v for k, v in req.items() if k not in ("anthropic_version", "anthropic_beta")}
    plain.update(model=unquote(match[1]), stream=stream)
    plain_headers = {k: v for k, v in headers.items() if not k.startswith("x-amz")}
    plain_headers["anthropic-version"] = "2023-06-01"
    response = await respond("POST", "/v1/messages", plain_headers, orjson.dumps(plain))
    record(method, path, query, headers, body)
    return await _dress(response, stream)


async def _dress(response: MockResponse, stream: bool) -> MockResponse:
    """Bedrock's answer from the plain mock's Anthropic one."""
    rid = ("x-amzn-requestid", f"mock-{next_serial()}")
    if response.status != 200:
        raw = await read_whole(response)
        name, message = _ERRORS.get(response.status, ("InternalServerException", None))
        if message is None:
            try:
                message = str(orjson.loads(raw)["error"]["message"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                message = "The server encountered an internal error."
        status = {"ValidationException": 400, "ServiceUnavailableException": 503}.get(name, response.status)
        return _error(status, name, message)
    if stream:
        head = [("content-type", "application/vnd.amazon.eventstream"), rid]
        head.append(("x-amzn-bedrock-content-type", "application/json"))
        return MockResponse(200, head, RewrittenStream(response.body, _Frames()))
    raw = await read_whole(response)
    answered = with_body(response, raw)
    kept = [(k, v) for k, v in answered.headers if k in ("content-type", "content-length")]
    answered.headers = [*kept, rid]
    return answered


def create_app() -> ASGIApp:
    """The mock provider speaking Bedrock's runtime wire, as an ASGI app."""
    return serve(respond_bedrock)
