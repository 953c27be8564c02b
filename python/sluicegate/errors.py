"""The gateway's error tree. Every error knows its HTTP status, a snake_case code and an error type,
and each wire format renders it once (`formats.*.error_body`), so the SDKs raise their usual classes.

```
GatewayError(status, code, type)
├── InvalidRequest                 400  bad JSON, too deep, wrong content type, missing model, a bad parameter
│   ├── NotFound                   404  unknown path, unknown model
│   ├── RequestTimeout             408  the body took longer than server.body_timeout_s to arrive
│   ├── PayloadTooLarge            413  body over server.max_body_bytes
│   ├── PolicyBlocked              400  content a policy blocks (names the types, never the values)
│   └── ParameterNotAllowed        400  a model rule on a request field, or an output ceiling, refuses it
├── Unauthenticated                401  missing or unknown gateway key
├── ModelNotAllowed                403  a model access rule refuses the model (level, id, list, pattern)
├── SpendLimitExceeded             402  a spend cap would be crossed (level, id, limit, spent, reset)
├── RateLimited                    429  a rate limit is full (level, id, kind, limit, window; retry-after)
├── LoopDetected                   429  a runaway loop: the same request too often, or a rate jump
│                                       (codes loop_detected, rate_anomaly; rule, counts, cool-down end)
├── PolicyFailed                   500  a policy could not run (the request is refused: fail closed)
├── Unavailable                    503  the spend store is unreachable (fail_closed)
│   └── SecretUnavailable          503  the workspace's provider secret does not open (fail closed)
└── UpstreamError                  502  the provider misbehaved
    ├── UpstreamStatus             4xx/5xx passed through with the provider's own body
    ├── UpstreamUnreachable        502  connection refused, reset, DNS failure
    ├── UpstreamTimeout            504  connect, first byte, between chunks, or total
    ├── UpstreamProtocolError      502  malformed SSE or JSON, a redirect, a body or event over its bound
    └── UpstreamRefused            502  a tenant base URL or address the operator does not allow
```

Messages name kinds, fields and limits, never request content or keys.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error the gateway answers with.

    Arguments:
        message: a human-readable explanation (never content or secrets).
        status: the HTTP status to answer with.
        code: a snake_case code, also the metric label.
        type: the error type family (OpenAI's `type`; mapped to Anthropic's types by the formats).
        param: the request field at fault, when there is one.
        headers: response headers that go with the error.
        extra: more fields for the error object of the body (figures, never content).
    """

    status: int = 500
    code: str = "internal_error"
    type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if type is not None:
            self.type = type
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}
        self.events: list[Any] = []  # the policy events behind a refusal (sluicegate.observe.events)


class InvalidRequest(GatewayError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class RequestTimeout(InvalidRequest):
    """The request body did not arrive in time; the connection is closed (the rest of the body is never read)."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class PolicyBlocked(InvalidRequest):
    code = "content_blocked"


class PolicyFailed(GatewayError):
    status = 500
    code = "policy_failed"

    def __init__(self, message: str) -> None:
        # Retrying would fail the same way: tell the SDKs not to.
        super().__init__(message, headers={"x-should-retry": "false"})


# ── model access rules (policy/models.py) ──────────────────────────────────────────────────────


class ModelNotAllowed(GatewayError):
    """A model access rule refuses the model asked for, or the model its alias stands for. The
    body's `rule` names it (level, id, which list, which pattern); retrying cannot help."""

    status = 403
    code = "model_not_allowed"
    type = "permission_error"

    def __init__(self, message: str, rule: dict[str, object]) -> None:
        super().__init__(message, param="model", headers={"x-should-retry": "false"}, extra={"rule": rule})


class ParameterNotAllowed(InvalidRequest):
    """A model rule on a request field (`parameter_not_allowed`) or an output ceiling
    (`max_tokens_above_ceiling`) refuses the request; the body's `rule` names it."""

    code = "parameter_not_allowed"

    def __init__(self, message: str, rule: dict[str, object], *, param: str, code: str | None = None) -> None:
        super().__init__(message, code=code, param=param, headers={"x-should-retry": "false"}, extra={"rule": rule})


# ── end of model access rules ─────────────────────────────────────────────────────────────────


class ToolNotAllowed(GatewayError):
    """A tool access rule refuses a tool of the model traffic: the request forces a denied tool
    (`tool_choice`), or the model's answer calls one under a `block` rule. The body's `rule` names
    it (level, id, which list, which pattern); the answer, when it came, was billed."""

    status = 403
    code = "tool_not_allowed"
    type = "permission_error"

    def __init__(self, message: str, rule: dict[str, object], *, param: str | None = None) -> None:
        super().__init__(message, param=param, headers={"x-should-retry": "false"}, extra={"rule": rule})


class Unauthenticated(GatewayError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class SpendLimitExceeded(GatewayError):
    """A cap would be crossed. `x-should-retry: false`: retrying cannot help before the reset."""

    status = 402
    code = "spend_limit_exceeded"
    type = "insufficient_quota"


class RateLimited(GatewayError):
    """A rate limit is full (`policy.limits`). Unlike a cap, waiting helps: `retry-after` and
    `retry-after-ms` say how long, and the SDKs retry by themselves; `x-sluicegate-limit` and the
    code tell it apart from a provider's 429."""

    status = 429
    code = "gateway_rate_limit_exceeded"
    type = "rate_limit_error"


class LoopDetected(GatewayError):
    """A loop rule refuses the call (`policy.loops`): code `loop_detected` (the same request again)
    or `rate_anomaly` (a rate jump), `retry-after` = the cool-down left, and for a block
    `x-should-retry: false` (retrying a loop is the loop)."""

    status = 429
    code = "loop_detected"
    type = "rate_limit_error"


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"
    type = "api_error"


class SecretUnavailable(Unavailable):
    """The caller's workspace (or organization) has a provider secret this gateway cannot open: the
    call is refused, never sent with the operator's credentials instead. Retrying cannot help until
    the operator fixes the master key, so the SDKs are told not to."""

    code = "provider_secret_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"x-should-retry": "false"})


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"
    type = "api_error"


class UpstreamStatus(UpstreamError):
    """The provider answered with an error status; its body is passed through unchanged.

    Arguments:
        status: the provider's status.
        body: the provider's error body (bounded in size by the caller).
        headers: the provider's headers worth passing on (retry-after and the like).
    """

    code = "upstream_status"

    def __init__(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        super().__init__(f"the provider answered {status}", status=status, headers=headers)
        self.body = body
        self.content_type = content_type


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"


class UpstreamRefused(UpstreamError):
    """The gateway will not send to this destination (a tenant's base URL, or the address it
    resolves to, is outside what the operator allows). Retrying cannot help."""

    code = "upstream_address_refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"x-should-retry": "false"})
