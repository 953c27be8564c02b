"""LangSmith: every proxied call becomes an `llm` run, a child of the caller's run when the request
carries LangSmith's distributed-tracing headers (`langsmith-trace`, `baggage`), a root run in the
configured project otherwise; each policy event becomes feedback on that run.

Nothing on the request path waits for LangSmith: the app hands a finished call to `submit`, which
puts it on a bounded queue (a full queue drops the call and counts it). A background thread turns
calls into runs with the real `langsmith` SDK, whose own batching thread sends them. Inputs are
what went upstream (already redacted; pseudonymized values stay placeholders), outputs are what
the client received, redacted again before they leave, so a restored value never reaches a trace.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson

from sluicegate.config import LangSmithSettings
from sluicegate.formats.slots import all_strings
from sluicegate.formats.sse import EventBuffer
from sluicegate.observe.ids import new_uuid
from sluicegate.proxy.relay import Outcome
from sluicegate.secrets import Secret

log = logging.getLogger("sluicegate.langsmith")

# Baggage keys a caller may set. An address or replica list would send the gateway's runs, with
# its credentials, wherever the caller names: those are dropped.
_BAGGAGE_KEYS = ("langsmith-metadata", "langsmith-tags", "langsmith-project")
_PROVIDERS = {"openai": "openai", "openai_compatible": "openai", "anthropic": "anthropic", "mock": "sluicegate-mock"}


@dataclass(slots=True)
class Call:
    """A finished call as the sink needs it."""

    outcome: Outcome
    route: str
    stream: bool
    trace_headers: dict[str, str]
    api_key: Secret | None = None  # the workspace's LangSmith key, when its secrets hold one
    project: str | None = None  # the workspace's LangSmith project


def trace_headers(scope_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The caller's `langsmith-trace` and the safe part of its `baggage`."""
    out: dict[str, str] = {}
    for name, value in scope_headers:
        if name == b"langsmith-trace":
            out["langsmith-trace"] = value.decode("latin-1")
        elif name == b"baggage":
            kept = [
                item.strip()
                for item in value.decode("latin-1").split(",")
                if item.strip().split("=", 1)[0] in _BAGGAGE_KEYS
            ]
            if kept:
                out["baggage"] = ",".join(kept)
    return out


@dataclass(frozen=True, slots=True)
class Parent:
    """The caller's run, as its distributed-tracing headers name it."""

    dotted_order: str
    trace_id: uuid.UUID
    run_id: uuid.UUID
    stamp: str  # the start time segment of the caller's run
    project: str | None
    metadata: dict[str, Any]
    tags: list[str]


_STAMP = 22  # len("20261127T063255912742Z")


def parent_of(headers: dict[str, str]) -> Parent | None:
    """The caller's run from `langsmith-trace` (dotted order: root first, each segment a start time
    and a run id) and `baggage` (metadata, tags, project); None when absent or malformed."""
    dotted = headers.get("langsmith-trace", "").strip()
    if not dotted:
        return None
    try:
        segments = dotted.split(".")
        trace_id, run_id = uuid.UUID(segments[0][_STAMP:]), uuid.UUID(segments[-1][_STAMP:])
        stamp = segments[-1][:_STAMP]
        datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return None
    project, metadata, tags = None, {}, []
    for item in headers.get("baggage", "").split(","):
        key, _, value = item.strip().partition("=")
        value = unquote(value)
        if key == "langsmith-project" and value:
            project = value
        elif key == "langsmith-metadata":
            with contextlib.suppress(ValueError):
                loaded = orjson.loads(value)
                metadata = loaded if isinstance(loaded, dict) else {}
        elif key == "langsmith-tags" and value:
            tags = [t for t in value.split(",") if t]
    return Parent(dotted, trace_id, run_id, stamp, project, metadata, tags)


def assemble_stream(route: str, chunks: list[bytes]) -> dict[str, Any]:
    """The output the client assembled from a stream, in the format's own non-streamed shape."""
    buf = EventBuffer()
    texts: dict[Any, list[str]] = {}
    for chunk in chunks:
        for event in buf.feed(chunk):
            if event.data == b"[DONE]":
                continue
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            if route == "openai_chat":
                for choice in data.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if isinstance(delta.get("content"), str):
                        texts.setdefault(("content", choice.get("index", 0)), []).append(delta["content"])
                    for call in delta.get("tool_calls") or ():
                        args = (call.get("function") or {}).get("arguments")
                        if isinstance(args, str):
                            texts.setdefault(("tool", choice.get("index", 0), call.get("index", 0)), []).append(args)
            elif route == "anthropic_messages" and data.get("type") == "content_block_delta":
                delta = data.get("delta") or {}
                piece = delta.get("text", delta.get("partial_json"))
                if isinstance(piece, str):
                    texts.setdefault(("block", data.get("index", 0)), []).append(piece)
            elif route == "openai_responses" and data.get("type") in (
                "response.output_text.delta",
                "response.function_call_arguments.delta",
            ):
                texts.setdefault(("item", data.get("item_id")), []).append(str(data.get("delta", "")))
    joined = {k: "".join(v) for k, v in texts.items()}
    if route == "openai_chat":
        choices = {}
        for key, text in joined.items():
            message = choices.setdefault(key[1], {"role": "assistant", "content": ""})
            if key[0] == "content":
                message["content"] += text
            else:
                message.setdefault("tool_calls", []).append({"type": "function", "function": {"arguments": text}})
        return {"choices": [{"index": i, "message": m} for i, m in sorted(choices.items())]}
    if route == "anthropic_messages":
        return {"content": [{"type": "text", "text": t} for _, t in sorted(joined.items(), key=lambda kv: kv[0][1])]}
    return {"output_text": "".join(joined.values())}


class LangSmithSink:
    """A bounded queue of finished calls and the thread that posts them as runs.

    Arguments:
        settings: the `[langsmith]` section.
        api_key: the LangSmith API key.
        scrub: rewrites a text before it leaves for LangSmith (the redactor's whole-text redaction).
    """

    def __init__(self, settings: LangSmithSettings, api_key: str | None, scrub: Callable[[str], str]) -> None:
        import langsmith

        self.settings = settings
        self.scrub = scrub
        self.client = langsmith.Client(api_url=settings.endpoint, api_key=api_key, auto_batch_tracing=True)
        self._clients: dict[Secret, Any] = {}  # per workspace key
        self.dropped = 0
        self.posted = 0
        self.failed = 0
        self._queue: queue.Queue[Call | None] = queue.Queue(maxsize=settings.queue_size)
        self._thread = threading.Thread(target=self._run, name="sluicegate-langsmith", daemon=True)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def submit(self, call: Call) -> None:
        """Queue a finished call; never blocks (a full queue drops it and counts the drop)."""
        try:
            self._queue.put_nowait(call)
        except queue.Full:
            self.dropped += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Post what is queued, then flush the SDK's batches (bounded by `timeout`)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        for client in [self.client, *self._clients.values()]:
            flusher = threading.Thread(target=client.flush, daemon=True)
            flusher.start()
            flusher.join(timeout)

    def _client_for(self, api_key: Secret | None) -> Any:
        if api_key is None:
            return self.client
        client = self._clients.get(api_key)
        if client is None:
            import langsmith

            client = langsmith.Client(api_url=self.settings.endpoint, api_key=api_key.reveal(), auto_batch_tracing=True)
            self._clients[api_key] = client
        return client

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            try:
                self._post(call)
                self.posted += 1
            except Exception as exc:
                self.failed += 1
                log.warning("a run could not be built for LangSmith", extra={"error": type(exc).__name__})

    def _scrubbed(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        for slot in all_strings(value, ""):
            slot.set(self.scrub(slot.text))
        return value

    def _post(self, call: Call) -> None:
        outcome = call.outcome
        info = outcome.info
        assert info is not None
        inputs = orjson.loads(outcome.request_body) if outcome.request_body else {}
        if not isinstance(inputs, dict):
            inputs = {"input": inputs}
        outputs: dict[str, Any] = {}
        if outcome.response:
            if call.stream:
                outputs = assemble_stream(call.route, outcome.response)
            else:
                with_body = orjson.loads(b"".join(outcome.response))
                outputs = with_body if isinstance(with_body, dict) else {"output": with_body}
        # Redaction already rewrote what went upstream and what came back, except values it was
        # told to leave (monitor) or to put back for the client (pseudonymize): scan those again.
        if any(e.policy == "redaction" and e.action in ("monitor", "pseudonymize") for e in outcome.events):
            inputs, outputs = self._scrubbed(inputs), self._scrubbed(outputs)
        start = datetime.fromtimestamp(info.started_at, UTC)
        run_id = uuid.UUID(info.run_id) if info.run_id else new_uuid()
        metadata = self._metadata(outcome)
        tags = ["sluicegate", *sorted({f"{e.policy}:{e.action}" for e in outcome.events})]
        parent = parent_of(call.trace_headers)
        stamp = start.strftime("%Y%m%dT%H%M%S%fZ")
        if parent is not None and parent.stamp > stamp:  # a child never starts before its parent
            stamp = parent.stamp
            start = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        if parent is not None:
            metadata = {**parent.metadata, **metadata}
            tags = sorted({*tags, *parent.tags})
        segment = stamp + str(run_id)
        self._client_for(call.api_key).create_run(
            name=f"sluicegate {call.route}",
            inputs=inputs,
            run_type="llm",
            project_name=(parent.project if parent else None) or call.project or self.settings.project,
            id=run_id,
            trace_id=parent.trace_id if parent else run_id,
            parent_run_id=parent.run_id if parent else None,
            dotted_order=f"{parent.dotted_order}.{segment}" if parent else segment,
            start_time=start,
            end_time=datetime.now(UTC),
            outputs=outputs,
            extra={"metadata": metadata},
            tags=tags,
            error=outcome.error if outcome.status >= 400 else None,
        )
        self._feedback(self._client_for(call.api_key), run_id, parent.trace_id if parent else run_id, outcome)

    def _metadata(self, outcome: Outcome) -> dict[str, Any]:
        info = outcome.info
        assert info is not None
        md: dict[str, Any] = {
            "ls_provider": _PROVIDERS.get(info.provider_kind or "", info.provider_kind),
            "ls_model_name": info.model,
            "ls_model_type": "chat",
            "sluicegate_request_id": info.request_id,
            "sluicegate_workspace": info.workspace,
            "sluicegate_key": info.key,
            "sluicegate_provider": info.provider,
            "sluicegate_status": outcome.status,
        }
        if outcome.cost_nusd is not None:
            md["sluicegate_cost_nusd"] = outcome.cost_nusd
        if outcome.first_byte_at is not None:
            md["sluicegate_ttft_s"] = round(outcome.first_byte_at - info.t0, 6)
        if outcome.events:
            md["sluicegate_policy"] = [f"{e.policy}:{e.action}:{e.entity}:{e.count}" for e in outcome.events]
        usage = outcome.usage
        if usage is not None:
            md["usage_metadata"] = {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
                "input_token_details": {"cache_read": usage.cache_read_tokens},
                "output_token_details": {"reasoning": usage.reasoning_tokens},
            }
            if outcome.cost_nusd is not None:
                md["usage_metadata"]["total_cost"] = outcome.cost_nusd / 1e9
        return md

    def _feedback(self, client: Any, run_id: uuid.UUID, trace_id: uuid.UUID, outcome: Outcome) -> None:
        """One feedback per event kind, counts by entity type, never values."""
        grouped: dict[str, dict[str, int]] = {}
        for e in outcome.events:
            grouped.setdefault(f"sluicegate.{e.policy}.{e.action}", {}).setdefault(e.entity, 0)
            grouped[f"sluicegate.{e.policy}.{e.action}"][e.entity] += e.count
        for key, counts in sorted(grouped.items()):
            comment = ", ".join(f"{entity} x{n}" for entity, n in sorted(counts.items()))
            client.create_feedback(
                run_id,
                key=key,
                score=sum(counts.values()),
                value=counts,
                comment=comment,
                trace_id=trace_id,
            )
