"""What the MCP gateway does to the JSON-RPC messages it relays: tool lists filtered, tool calls
checked and their arguments redacted on the way in, results (text, structured content, resource
contents), errors and server notifications redacted on the way out.

One `Exchange` per HTTP request to `/mcp/{server}`: it knows the caller, its rules and redactor,
remembers the `tools/call` requests of the body it forwarded (so their answers are found on the
stream), and collects the policy events of every decision. It never keeps a value: events carry
server and tool names, entity types, counts and locations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from sluicegate.errors import PayloadTooLarge, PolicyFailed
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.pipeline import read_body
from sluicegate.policy.redaction import Redactor
from sluicegate.policy.tools import ToolPolicy, ToolRules
from sluicegate.types import Receive

# JSON-RPC error codes: the spec's, and the implementation-defined range for the gateway's own refusals.
INVALID_REQUEST = -32600
PARSE_ERROR = -32700
TOOL_NOT_ALLOWED = -32003
POLICY_FAILED = -32004
CONTENT_BLOCKED = -32005
SPEND_LIMIT = -32006  # a priced tools/call that a spend cap refuses
RATE_LIMITED = -32007  # a tools/call that a rate limit on tool calls refuses
UPSTREAM_AUTH = -32008  # no token for the server: its token endpoint refused or could not be reached

# What becomes of a tools/call (the `outcome` of `sluicegate_tool_calls`): answered by the server
# (`ok`, `redacted` when the gateway redacted its arguments or result, `error` for a JSON-RPC error or
# an `isError` result), refused by the gateway (`denied` by the tool lists, `rate_limited`,
# `spend_limited`, `blocked` by redaction either way, `policy_failed` when the scan failed closed), or
# neither: `not_sent` (another call of its batch was refused), `unanswered` (sent, but its answer did
# not come back on this request: the upstream failed, the stream broke or the client left; a
# resumed stream may still deliver it).
TOOL_OUTCOMES = (
    "ok", "redacted", "error", "denied", "rate_limited", "spend_limited", "blocked", "policy_failed",
    "not_sent", "unanswered",
)  # fmt: skip
WITHHELD_NAME = "(withheld)"  # the tool label of a call whose name held a value the gateway redacts


NOT_JSON: Final = object()  # what `read_rpc_body` hands back for a body that does not parse


async def read_rpc_body(receive: Receive, headers: Mapping[bytes, bytes], limit: int, timeout_s: float) -> Any:
    """A POST's JSON-RPC body (a message or a batch), parsed; `NOT_JSON` when it is not JSON.

    Raises:
        PayloadTooLarge: it declares or sends more than `limit` bytes.
        RequestTimeout: it did not arrive within `timeout_s`.
        ClientGone: the client left before it was complete.
    """
    declared = headers.get(b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    raw = await read_body(receive, limit, timeout_s)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return NOT_JSON


def rpc_error(msg_id: Any, code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": error}


def tool_error(msg_id: Any, text: str) -> dict[str, Any]:
    """A tool result that says the call failed (`isError`): the session goes on, the model reads why."""
    return {"jsonrpc": "2.0", "id": msg_id, "result": {"content": [{"type": "text", "text": text}], "isError": True}}


def is_request(msg: Any) -> bool:
    return isinstance(msg, dict) and isinstance(msg.get("method"), str) and "id" in msg


@dataclass(slots=True)
class Exchange:
    """The gateway's side of one HTTP request to an MCP server.

    Arguments:
        server: the server's name on the gateway.
        who: the caller.
        tools: the tool policy, and `rules` the caller's rules (empty: nothing to check).
        redactor: the caller's redactor (None: redaction is off).
    """

    server: str
    who: Identity
    tools: ToolPolicy
    rules: ToolRules
    redactor: Redactor | None
    events: list[PolicyEvent] = field(default_factory=list)
    calls: dict[Any, str] = field(default_factory=dict)  # id of a forwarded tools/call -> tool name
    answered: dict[Any, dict[str, Any]] = field(default_factory=dict)  # id -> the gateway's own answer
    # For a trace (only when a trace sink wants them): each call's arguments and answer, as relayed.
    capture: bool = False
    session_id: str | None = None  # the session the upstream's answer names
    traced: dict[Any, tuple[str, Any, Any]] = field(default_factory=dict)  # id -> (tool, arguments, answer)
    # What became of each tools/call of the body (`TOOL_OUTCOMES`), for the call counts in /metrics:
    # id -> (tool, outcome). A forwarded call whose answer is not seen here has none (`unanswered`).
    outcomes: dict[Any, tuple[str, str]] = field(default_factory=dict)
    redacted_arguments: set[Any] = field(default_factory=set)  # ids of calls sent with redacted arguments

    def settle(self, msg_id: Any, tool: str, outcome: str) -> None:
        """Say what became of the tools/call `msg_id` (the first word stands)."""
        self.outcomes.setdefault(msg_id, (tool, outcome))

    def tool_outcomes(self, sent: bool) -> list[tuple[str, str]]:
        """(tool, outcome) of every tools/call of the body; `sent`: whether the body went upstream
        (a call that did not, and was not refused itself, is `not_sent`)."""
        out = list(self.outcomes.values())
        pending = "unanswered" if sent else "not_sent"
        out += [(tool, pending) for msg_id, tool in self.calls.items() if msg_id not in self.outcomes]
        return out

    # ── client -> server ─────────────────────────────────────────────────────────────────────

    def outbound(self, msg: Any) -> None:
        """Check one message the client sends, in place; a refused call gets its answer in `answered`."""
        if not is_request(msg) or msg["method"] != "tools/call":
            return
        params = msg.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str):
            return  # the server answers what is malformed
        msg_id = msg["id"]
        if self.redactor is not None and self.redactor.types_in_name(name):
            # The name goes into events, logs and the trace's run name: a value planted there is
            # refused before it reaches any of them (as a model name is on /v1).
            text = "the tool name holds a value of a type this gateway redacts; the call was not sent"
            self.answered[msg_id] = rpc_error(msg_id, CONTENT_BLOCKED, text)
            self.settle(msg_id, WITHHELD_NAME, "blocked")  # the name is never a label
            return
        if not self.rules.empty:
            decision = self.tools.decide(self.rules, self.who, self.server, name, "refuse")
            self.events += decision.events
            if decision.refused is not None:
                message, rule = decision.refused
                self.answered[msg_id] = rpc_error(msg_id, TOOL_NOT_ALLOWED, message, {"rule": rule})
                self.settle(msg_id, name, "denied")
                self._trace(msg_id, name, None, self.answered[msg_id])
                return
        arguments = params.get("arguments")  # type: ignore[union-attr]
        if self.redactor is not None and isinstance(arguments, dict | list):
            try:
                scan, blocked = self.redactor.scan_value(arguments, "request", self.who.workspace)
            except PolicyFailed as exc:
                self.answered[msg_id] = rpc_error(msg_id, POLICY_FAILED, f"{exc.message}; the call was not sent")
                self.settle(msg_id, name, "policy_failed")
                return
            self.events += _located(scan.tally.events(), "arguments", self.server, name)
            if blocked:
                text = f"the tool call's arguments contain content this gateway blocks: {', '.join(blocked)}"
                self.answered[msg_id] = tool_error(msg_id, text + "; the call was not sent")
                self.settle(msg_id, name, "blocked")
                self._trace(msg_id, name, arguments, self.answered[msg_id])
                return
            if scan.tally.counts:
                self.redacted_arguments.add(msg_id)
        self.calls[msg_id] = name
        self._trace(msg_id, name, arguments, None)

    def _trace(self, msg_id: Any, name: str, arguments: Any, answer: dict[str, Any] | None) -> None:
        if self.capture:
            said = answer.get("result", {"error": answer.get("error")}) if answer is not None else None
            self.traced[msg_id] = (name, arguments, said)

    def answer_of(self, msg: dict[str, Any]) -> None:
        """Keep a call's answer, as the client gets it, for its trace."""
        found = self.traced.get(msg.get("id")) if self.capture and "method" not in msg else None
        if found is not None:
            self.traced[msg["id"]] = (found[0], found[1], msg.get("result", {"error": msg.get("error")}))

    # ── server -> client ─────────────────────────────────────────────────────────────────────

    def inbound(self, msg: Any) -> bool:
        """Apply the gateway's rules to one message the server sends, in place; True if it changed."""
        if not isinstance(msg, dict):
            return False
        changed = self._inbound(msg)
        self.answer_of(msg)
        msg_id = msg.get("id")
        tool = self.calls.get(msg_id) if msg_id is not None and "method" not in msg else None
        if tool is not None:
            result = msg.get("result")
            if "error" in msg or (isinstance(result, dict) and result.get("isError") is True):
                self.settle(msg_id, tool, "error")
            elif changed or msg_id in self.redacted_arguments:
                self.settle(msg_id, tool, "redacted")
            else:
                self.settle(msg_id, tool, "ok")
        return changed

    def _inbound(self, msg: dict[str, Any]) -> bool:
        result = msg.get("result")
        if isinstance(result, dict) and isinstance(result.get("tools"), list) and "id" in msg:
            return self._listing(result)
        if self.redactor is None:
            return False
        msg_id = msg.get("id")
        tool = self.calls.get(msg_id) if msg_id is not None and "method" not in msg else None
        changed = False
        for part in ("result", "error", "params"):
            value = msg.get(part)
            if not isinstance(value, dict | list):
                continue
            try:
                scan, blocked = self.redactor.scan_value(value, "response", self.who.workspace)
            except PolicyFailed as exc:
                if tool is not None:
                    self.settle(msg_id, tool, "policy_failed")
                msg.pop(part)
                msg.update(rpc_error(msg_id, POLICY_FAILED, exc.message) if "id" in msg else {"params": {}})
                return True
            where = "result" if tool is not None and part == "result" else part
            self.events += _located(scan.tally.events(), where, self.server, tool)
            changed = changed or bool(scan.tally.counts)
            if blocked:
                said = f"contained content this gateway blocks: {', '.join(blocked)}"
                if tool is not None:
                    self.settle(msg_id, tool, "blocked")
                if part == "result" and tool is not None:
                    msg.pop("result")
                    msg.update(tool_error(msg_id, f"the tool result {said}; it was withheld"))
                elif part == "params":
                    msg["params"] = {}  # a notification or server request emptied rather than passed on
                else:
                    msg.pop(part)
                    msg.update(rpc_error(msg_id, CONTENT_BLOCKED, f"the answer {said}; it was withheld"))
                return True
        return changed

    def _listing(self, result: dict[str, Any]) -> bool:
        """Leave out of a `tools/list` answer every tool the caller may not use."""
        if self.rules.empty:
            return False
        kept = []
        for tool in result["tools"]:
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str):
                continue  # not a tool: not passed on
            decision = self.tools.decide(self.rules, self.who, self.server, name, "hide")
            self.events += decision.events
            if decision.refused is None:
                kept.append(tool)
        if len(kept) == len(result["tools"]):
            return False
        result["tools"] = kept
        return True


def _located(events: list[PolicyEvent], where: str, server: str, tool: str | None) -> list[PolicyEvent]:
    """Redaction events of MCP traffic: their locations under the message part, and the server and tool."""
    for e in events:
        e.locations = [f"{where}.{loc}" if loc else where for loc in e.locations]
        e.detail = {**e.detail, "server": server, **({"tool": tool} if tool is not None else {})}
    return events
