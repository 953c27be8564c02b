"""Azure OpenAI's wire, as the mock answers it (granian: `--factory sluicegate.mock.azure:create_app`).

Routes (anything else: 404 `Resource not found`, Azure's answer to a path it does not serve):

- `POST /openai/deployments/{deployment}/chat/completions?api-version=V` (also `/embeddings`,
  `/completions`): the deployment in the path decides the model, whatever the body's `model` says
  (it may be absent);
- `POST /openai/responses?api-version=V`: the body's `model` names the deployment;
- `POST /openai/v1/chat/completions`, `/openai/v1/responses`, `/openai/v1/embeddings` (the v1
  API: `api-version` optional, the body's `model` names the deployment);
- `/mock/…` as the plain mock.

A dated path without `api-version` is answered 404, as Azure does. A request with neither an
`api-key` header nor `Authorization: Bearer …` is answered 401 in Azure's shape. What passes goes
on to `respond()` at the plain mock's path, so every knob works (in the deployment's name too:
`dep@fault=429`, percent-encoded in the path); `STATS.last_request` then holds the Azure path, its
`query` string and the body as it came.

Azure's additions to OpenAI's answers are reproduced on chat completions: `prompt_filter_results`
beside the choices and `content_filter_results` on each; streamed, a first chunk with empty
`choices` (and empty `id`, `model`, `object`) that carries only `prompt_filter_results`, then the
chunks with `content_filter_results` on their choices. The `content_policy` fault is Azure's 400
`content_filter` error (`innererror.code` `ResponsibleAIPolicyViolation`), and a deployment whose
name starts with `filtered-` has its completion stopped by the filter after two content deltas
(`finish_reason: "content_filter"`, its category marked `filtered`).
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import orjson
from starlette.types import ASGIApp, Scope

from sluicegate.mock.app import MockResponse, respond, serve
from sluicegate.mock.vendor import RewrittenStream, json_answer, read_whole, record, sse_json, with_body

__all__ = ["create_app", "respond_azure"]

_DEPLOYMENT_PATH: Final = re.compile(r"/openai/deployments/([^/]+)(/chat/completions|/embeddings|/completions)")
_CATEGORIES: Final = ("hate", "self_harm", "sexual", "violence")
_SAFE: Final = {c: {"filtered": False, "severity": "safe"} for c in _CATEGORIES}
_PROMPT_FILTER: Final = [
    {"prompt_index": 0, "content_filter_results": {**_SAFE, "jailbreak": {"filtered": False, "detected": False}}}
]
_FILTERED_PREFIX: Final = "filtered-"
_CONTENT_DELTAS_BEFORE_FILTER: Final = 2
_NOT_FOUND: Final = {"error": {"code": "404", "message": "Resource not found"}}
_DENIED: Final = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
        "a valid key for an active subscription and use a correct regional API endpoint for your resource.",
    }
}


def content_filter_error() -> dict[str, Any]:
    """Azure's 400 body for a prompt its content filter refused."""
    return {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy. Please modify your prompt and retry. (mock)",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {**_SAFE, "violence": {"filtered": True, "severity": "high"}},
            },
        }
    }


def _filtered_results() -> dict[str, Any]:
    return {**_SAFE, "violence": {"filtered": True, "severity": "medium"}}


def _target(path: str, query: dict[str, list[str]]) -> tuple[str, str | None] | None:
    """(the plain mock's path, the deployment the path names) for an Azure path, None if Azure
    does not serve it (or it needs an api-version it lacks)."""
    dated = bool(query.get("api-version"))
    match = _DEPLOYMENT_PATH.fullmatch(path)
    if match is not None:
        return ("/v1" + match[2], unquote(match[1])) if dated else None
    if path == "/openai/responses":
        return ("/v1/responses", None) if dated else None
    if path in ("/openai/v1/chat/completions", "/openai/v1/responses", "/openai/v1/embeddings"):
        return "/v1" + path[len("/openai/v1") :], None
    return None


def _authorized(headers: dict[str, str]) -> bool:
    return bool(headers.get("api-key")) or headers.get("authorization", "").startswith("Bearer ")


async def respond_azure(scope: Scope, headers: dict[str, str], body: bytes) -> MockResponse:
    """Answer one request as Azure OpenAI would (see the module docstring)."""
    method = scope["method"]
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    if path.startswith("/mock/"):
        return await respond(method, path, headers, body)
    query_string = scope.get("query_string", b"").decode("latin-1")
    record(method, path, query_string, headers, body)
    target = _target(path, parse_qs(query_string))
    if method != "POST" or target is None:
        return json_answer(404, _NOT_FOUND)
    if not _authorized(headers):
        return json_answer(401, _DENIED)
    plain_path, deployment = target
    sent = body
    if deployment is not None:  # the path's deployment is the model, whatever the body says
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            req = None
        if isinstance(req, dict):
            sent = orjson.dumps({**req, "model": deployment})
    response = await respond(method, plain_path, headers, sent)
    record(method, path, query_string, headers, body)
    model = deployment or _body_model(body)
    filtered = model.split("@", 1)[0].startswith(_FILTERED_PREFIX)
    return await _dress(response, plain_path, filtered)


def _body_model(body: bytes) -> str:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    model = req.get("model") if isinstance(req, dict) else None
    return model if isinstance(model, str) else ""


async def _dress(response: MockResponse, plain_path: str, filtered: bool) -> MockResponse:
    """Azure's additions to an answer of the plain mock."""
    content_type = dict(response.headers).get("content-type", "")
    if response.status == 400:
        raw = await read_whole(response)
        error = orjson.loads(raw).get("error") if raw.startswith(b"{") else None
        if isinstance(error, dict) and error.get("code") == "content_policy_violation":
            return json_answer(400, content_filter_error())
        return with_body(response, raw)
    if response.status != 200 or plain_path != "/v1/chat/completions":
        return response
    if content_type.startswith("text/event-stream"):
        response.body = RewrittenStream(response.body, _StreamDress(filtered))
        return response
    raw = await read_whole(response)
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:  # the `malformed` fault
        return with_body(response, raw)
    answer["prompt_filter_results"] = _PROMPT_FILTER
    for choice in answer.get("choices") or ():
        choice["content_filter_results"] = _SAFE
        if filtered:
            choice["finish_reason"] = "content_filter"
            choice["content_filter_results"] = _filtered_results()
    return with_body(response, orjson.dumps(answer))


class _StreamDress:
    """Azure's chat stream from the plain mock's: the prompt's filter results first, each choice's
    results on its chunks, and (`filtered`) the completion stopped by the filter."""

    __slots__ = ("_contents", "_filtered", "_started", "_stopped")

    def __init__(self, filtered: bool) -> None:
        self._filtered = filtered
        self._started = False
        self._contents = 0
        self._stopped = False

    def __call__(self, event: bytes | None) -> list[bytes]:
        if event is None:
            return []
        out: list[bytes] = []
        if not self._started:
            self._started = True
            first = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": _PROMPT_FILTER,
            }
            out.append(b"data: " + orjson.dumps(first) + b"\n\n")
        chunk = sse_json(event)
        choices = chunk.get("choices") if chunk is not None else None
        if chunk is None or not isinstance(choices, list) or not choices:
            return [*out, event]  # [DONE], the usage chunk, a fault's event
        for choice in choices:
            delta = choice.get("delta") or {}
            if "role" in delta:
                choice["content_filter_results"] = {}
                continue
            if self._stopped:
                return out  # the filter stopped the completion: the rest is never sent
            if delta.get("content") or delta.get("tool_calls"):
                self._contents += 1
            choice["content_filter_results"] = _SAFE
            if self._filtered and self._contents > _CONTENT_DELTAS_BEFORE_FILTER:
                self._stopped = True
                choice["delta"] = {}
                choice["finish_reason"] = "content_filter"
                choice["content_filter_results"] = _filtered_results()
        return [*out, b"data: " + orjson.dumps(chunk) + b"\n\n"]


def create_app() -> ASGIApp:
    """The mock provider speaking Azure OpenAI's wire, as an ASGI app."""
    return serve(respond_azure)
