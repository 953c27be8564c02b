"""Google Gemini's OpenAI-compatible endpoint, as the mock answers it (granian:
`--factory sluicegate.mock.gemini:create_app`).

Routes: `POST /v1beta/openai/chat/completions`, `/v1beta/openai/embeddings`, `GET
/v1beta/openai/models`; `/mock/…` as the plain mock; anything else 404. Every request needs
`Authorization: Bearer <key>` (403 `PERMISSION_DENIED` without). What passes goes on to
`respond()` at the plain mock's path (every knob works); `STATS.last_request` holds the Gemini
path and the body as it came.

The endpoint's differences from OpenAI's that a client (or a gateway) meets:

- Errors are Google's, wrapped in a list of one: `[{"error": {"code": 400, "message": …,
  "status": "INVALID_ARGUMENT"}}]` (429 `RESOURCE_EXHAUSTED`, 500 `INTERNAL`, 503 `UNAVAILABLE`).
  The `context_length` fault says "The input token count (N) exceeds the maximum number of tokens
  allowed (M)."; `content_policy` is an `INVALID_ARGUMENT` too.
- A chat request field the endpoint does not know is refused (400 `Invalid JSON payload received.
  Unknown name "…": Cannot find field.`); `_CHAT_FIELDS` lists the ones it takes.
- A chat stream carries `usage` on every chunk, the counts so far (the last chunk has the totals),
  and no usage chunk of its own: the finish reason rides on the last content chunk.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Scope

from sluicegate.mock.app import MockResponse, respond, serve
from sluicegate.mock.chat import CHAT
from sluicegate.mock.reply import tokens
from sluicegate.mock.vendor import RewrittenStream, json_answer, read_whole, record, sse_json, with_body

__all__ = ["create_app", "respond_gemini"]

PREFIX: Final = "/v1beta/openai"
_PATHS: Final = {
    ("POST", f"{PREFIX}/chat/completions"): "/v1/chat/completions",
    ("POST", f"{PREFIX}/embeddings"): "/v1/embeddings",
    ("GET", f"{PREFIX}/models"): "/v1/models",
}
# The chat request fields the endpoint takes (its documented ones); any other is refused.
_CHAT_FIELDS: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "modalities",
        "audio",
        "parallel_tool_calls",
        "service_tier",
        "extra_body",
    }
)
_STATUS: Final = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}


def google_error(code: int, message: str) -> list[dict[str, Any]]:
    """Google's error body, in the list of one the OpenAI-compatible endpoint wraps it in."""
    status = _STATUS.get(code, "UNAVAILABLE" if code == 503 else "INTERNAL")
    return [{"error": {"code": code, "message": message, "status": status}}]


async def respond_gemini(scope: Scope, headers: dict[str, str], body: bytes) -> MockResponse:
    """Answer one request as Gemini's OpenAI-compatible endpoint would (see the module docstring)."""
    method, path = scope["method"], scope["path"]
    if path.startswith("/mock/"):
        return await respond(method, path, headers, body)
    record(method, path, scope.get("query_string", b"").decode("latin-1"), headers, body)
    plain_path = _PATHS.get((method, path.rstrip("/")))
    if plain_path is None:
        return json_answer(404, google_error(404, f"Method not found: {method} {path}"))
    if not headers.get("authorization", "").startswith("Bearer "):
        message = "Method doesn't allow unregistered callers. Please use API Key to call this API."
        return json_answer(403, google_error(403, message))
    req: Any = None
    if plain_path == "/v1/chat/completions":
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            req = None
        unknown = sorted(set(req) - _CHAT_FIELDS) if isinstance(req, dict) else []
        if unknown:
            message = f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
            return json_answer(400, google_error(400, message))
    response = await respond(method, plain_path, headers, body)
    record(method, path, scope.get("query_string", b"").decode("latin-1"), headers, body)
    return await _dress(response, req)


async def _dress(response: MockResponse, req: Any) -> MockResponse:
    """Gemini's differences, on an answer of the plain mock."""
    if response.status >= 400:
        raw = await read_whole(response)
        error = orjson.loads(raw).get("error") if raw.startswith(b"{") else None
        if not isinstance(error, dict):
            return with_body(response, raw)
        message = str(error.get("message", ""))
        if error.get("code") == "context_length_exceeded":
            message = "The input token count (250000) exceeds the maximum number of tokens allowed (1048576)."
        elif error.get("code") == "content_policy_violation":
            message = "The request was blocked by the safety filters (PROHIBITED_CONTENT). (mock)"
        retry = tuple((k, v) for k, v in response.headers if k.startswith("retry-after"))
        return json_answer(response.status, google_error(response.status, message), retry)
    content_type = dict(response.headers).get("content-type", "")
    if isinstance(req, dict) and content_type.startswith("text/event-stream"):
        response.body = RewrittenStream(response.body, _StreamDress(CHAT.input_tokens(req)))
    return response


class _StreamDress:
    """Gemini's chat stream from the plain mock's: usage so far on every chunk, the finish reason
    on the last content chunk (held back until the totals come), no usage chunk of its own."""

    __slots__ = ("_held", "_input", "_text")

    def __init__(self, input_tokens: int) -> None:
        self._input = input_tokens
        self._text = 0  # characters of content so far
        self._held: dict[str, Any] | None = None  # the last content chunk, awaiting its finish

    def _usage(self) -> dict[str, int]:
        output = tokens("x" * self._text)
        return {"prompt_tokens": self._input, "completion_tokens": output, "total_tokens": self._input + output}

    def __call__(self, event: bytes | None) -> list[bytes]:
        if event is None:
            return self._release()
        chunk = sse_json(event)
        if chunk is None:
            return [*self._release(), event]  # [DONE], a fault's event
        choices = chunk.get("choices")
        if not choices:  # the plain mock's usage chunk: its totals go on the held chunk
            if self._held is not None and isinstance(chunk.get("usage"), dict):
                self._held["usage"] = chunk["usage"]
            return self._release()
        choice = choices[0]
        finish = choice.get("finish_reason")
        if finish is not None and not choice.get("delta"):
            if self._held is None:
                self._held = chunk
            else:
                self._held["choices"][0]["finish_reason"] = finish
            self._held["usage"] = self._usage()
            return []
        out = self._release()
        content = (choice.get("delta") or {}).get("content")
        if isinstance(content, str):
            self._text += len(content)
        chunk["usage"] = self._usage()
        self._held = chunk
        return out

    def _release(self) -> list[bytes]:
        held, self._held = self._held, None
        return [] if held is None else [b"data: " + orjson.dumps(held) + b"\n\n"]


def create_app() -> ASGIApp:
    """The mock provider speaking Gemini's OpenAI-compatible wire, as an ASGI app."""
    return serve(respond_gemini)
