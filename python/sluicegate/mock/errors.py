"""Errors of the mock provider, and their bodies in each wire format.

A `MockError` names a kind; each format renders it with its own error types, so the SDKs raise
their usual exception classes (`openai.RateLimitError`, `anthropic.OverloadedError`...).
"""

from __future__ import annotations

from typing import Final, Literal

import orjson

__all__ = ["ErrorKind", "MockError", "anthropic_error", "error_bytes", "openai_error"]

ErrorKind = Literal["invalid_request", "not_found", "rate_limit", "server", "unavailable", "overloaded"]

# kind -> (OpenAI type, OpenAI code, Anthropic type)
_TYPES: Final[dict[str, tuple[str, str | None, str]]] = {
    "invalid_request": ("invalid_request_error", None, "invalid_request_error"),
    "not_found": ("invalid_request_error", "not_found", "not_found_error"),
    "rate_limit": ("requests", "rate_limit_exceeded", "rate_limit_error"),
    "server": ("server_error", None, "api_error"),
    "unavailable": ("server_error", "service_unavailable", "api_error"),
    "overloaded": ("server_error", "overloaded", "overloaded_error"),
}


class MockError(Exception):
    """An error answer: HTTP status, kind, message and the request field at fault.

    Attributes:
        status: the HTTP status to answer.
        kind: what went wrong, mapped to each format's error type.
        message: human-readable text.
        param: the request field or knob at fault, if any.
        code: an OpenAI `code` that overrides the kind's default.
        headers: extra response headers (`retry-after-ms`...).
        usage: what the failed answer is billed, in the OpenAI format's `usage` (the `500_billed` fault).
    """

    def __init__(
        self,
        status: int,
        kind: ErrorKind,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        usage: dict[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.usage = usage
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def openai_error(err: MockError) -> dict[str, object]:
    """The OpenAI error object `{"error": {"message", "type", "param", "code"}}`."""
    type_, code, _ = _TYPES[err.kind]
    body: dict[str, object] = {
        "error": {"message": err.message, "type": type_, "param": err.param, "code": err.code or code}
    }
    if err.usage is not None:
        body["usage"] = err.usage
    return body


def anthropic_error(err: MockError, request_id: str) -> dict[str, object]:
    """The Anthropic error object `{"type": "error", "error": {"type", "message"}, "request_id"}`."""
    return {"type": "error", "error": {"type": _TYPES[err.kind][2], "message": err.message}, "request_id": request_id}


def error_bytes(err: MockError, anthropic: bool, request_id: str) -> bytes:
    """The error body for the format of the path, as JSON bytes."""
    return orjson.dumps(anthropic_error(err, request_id) if anthropic else openai_error(err))
