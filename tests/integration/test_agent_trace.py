"""An agent built with LangChain uses both the model and an MCP server's tools through the gateway,
and the whole of it is one LangSmith trace.

The agent: LangChain's `ChatOpenAI` pointed at the gateway's `/v1` with a gateway key, the tools of
the gateway's `/mcp/docs` (a real server built with the official `mcp` SDK behind it) as LangChain
tools, and a ReAct loop over `bind_tools`: the model asks for a tool, the agent calls it, and a last
turn without tools writes the answer. LangChain traces the agent with the `langsmith` SDK; each HTTP
request the agent makes, to the model or to the MCP server, carries the current run's
`langsmith-trace` and `baggage` headers, so the gateway's own runs (an `llm` run per model call, a
`tool` run per tool call) nest inside the agent's trace. The LangSmith stand-in records what both
sides post; the test reads the trace from it.

(The MCP side is wrapped by hand, one session per tool call as `langchain-mcp-adapters` does: that
package requires `mcp<2`, and the gateway's tests use the `mcp` SDK 2.)"""

from __future__ import annotations

import contextlib
import uuid
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

import httpx2
import langsmith
import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.tracers import LangChainTracer
from langchain_openai import ChatOpenAI
from langsmith.run_helpers import get_current_run_tree
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from tests.conftest import GATEWAY_KEY, Server
from tests.integration.test_langsmith import StandIn
from tests.integration.test_mcp_langsmith import standin, traced_gateway

__all__ = ["standin", "traced_gateway"]  # the fixtures, shared with the MCP tracing tests

EMAIL = "jane.doe@example.com"
pytestmark = pytest.mark.timeout(60)


def trace_headers() -> dict[str, str]:
    """The current LangSmith run's distributed-tracing headers (none outside a run)."""
    run = get_current_run_tree()
    return run.to_headers() if run is not None else {}


_MODEL_RUN: ContextVar[uuid.UUID | None] = ContextVar("model_run", default=None)


class ModelRunTracker(AsyncCallbackHandler):
    """Remembers, in the calling task's context, the chat model run LangChain has just started, so
    that the model's HTTP request carries that run's tracing headers (LangChain makes the request
    as the run's parent: the gateway's run would be the model run's sibling, not its child)."""

    run_inline = True

    async def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        _MODEL_RUN.set(run_id)


def model_trace_headers(tracer: LangChainTracer) -> Any:
    """An httpx request hook: the tracing headers of the chat model run in progress."""

    async def hook(request: httpx2.Request) -> None:
        run_id = _MODEL_RUN.get()
        run = tracer.run_map.get(str(run_id)) if run_id is not None else None
        request.headers.update(run.to_headers() if run is not None else trace_headers())

    return hook


@contextlib.asynccontextmanager
async def mcp_session(url: str) -> Any:
    """A session with the gateway's MCP endpoint, as the current run: its requests carry the gateway
    key and the run's tracing headers."""
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", **trace_headers()}
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=20))
        read, write = await stack.enter_async_context(streamable_http_client(url, http_client=client))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


async def mcp_tools(url: str) -> list[BaseTool]:
    """The MCP server's tools as LangChain tools; each call opens its own session inside the tool's
    run, so the gateway's run of the call nests under it."""
    async with mcp_session(url) as session:
        listed = (await session.list_tools()).tools

    def wrap(name: str, description: str, schema: dict[str, Any]) -> BaseTool:
        async def call(**arguments: Any) -> str:
            async with mcp_session(url) as session:
                result = await session.call_tool(name, arguments)
            text = "".join(getattr(c, "text", "") for c in result.content)
            return f"error: {text}" if result.is_error else text

        return StructuredTool(name=name, description=description, args_schema=schema, coroutine=call)

    return [wrap(t.name, t.description or "", t.input_schema) for t in listed]


async def react(
    model: ChatOpenAI, tools: list[BaseTool], question: str, config: RunnableConfig, max_steps: int = 1
) -> BaseMessage:
    """A ReAct loop: the model may call tools for `max_steps` turns; a last turn without tools
    answers from what they returned."""
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [HumanMessage(question)]
    with_tools = model.bind_tools(tools)
    for _ in range(max_steps):
        reply = await with_tools.ainvoke(messages, config)
        messages.append(reply)
        if not reply.tool_calls:  # type: ignore[attr-defined]
            return reply
        for call in reply.tool_calls:  # type: ignore[attr-defined]
            result = await by_name[call["name"]].ainvoke(call["args"], config)
            messages.append(ToolMessage(str(result), tool_call_id=call["id"]))
    return await model.ainvoke(messages, config)


async def test_an_agents_model_and_tool_calls_are_one_trace(traced_gateway: Server, standin: StandIn) -> None:
    agent_client = langsmith.Client(api_url=standin.url, api_key="agent-key")
    tracer = LangChainTracer(project_name="agent-project", client=agent_client)
    config: RunnableConfig = {"callbacks": [tracer, ModelRunTracker()]}
    http = httpx2.AsyncClient(event_hooks={"request": [model_trace_headers(tracer)]}, timeout=20)
    model = ChatOpenAI(
        # The mock model calls the first tool the request defines, with `{"text": <reply>}`; the
        # reply is percent-encoded in the model name (the knobs' syntax), so only the model's
        # answer holds the address.
        model=f"mh/mock-gpt@tool_call=1,reply=write to {quote(EMAIL)}",
        base_url=f"{traced_gateway.url}/v1",
        api_key=SecretStr(GATEWAY_KEY),
        http_async_client=http,
        max_retries=0,
    )
    seen: dict[str, str] = {}

    @langsmith.traceable(name="agent", run_type="chain", client=agent_client)
    async def agent(question: str) -> str:
        root = get_current_run_tree()
        assert root is not None
        seen["id"], seen["trace_id"] = str(root.id), str(root.trace_id)
        tools = await mcp_tools(f"{traced_gateway.url}/mcp/docs")
        answer = await react(model, tools, question, config)
        return str(answer.content)

    with langsmith.tracing_context(enabled=True, project_name="agent-project", client=agent_client):
        answer = await agent("What does the docs server echo?", langsmith_extra={"client": agent_client})
    await http.aclose()
    agent_client.flush()
    assert answer  # the last turn answered

    def gateways(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in runs.values() if ((r.get("extra") or {}).get("metadata") or {}).get("sluicegate_request_id")]

    def whole_trace(s: StandIn) -> dict[str, dict[str, Any]] | None:
        finished = {i: r for i, r in s.runs.items() if r.get("end_time") and r.get("outputs") is not None}
        return dict(finished) if len(finished) == 7 and len(gateways(finished)) == 3 else None

    runs = standin.wait_for(whole_trace)
    assert {str(r["trace_id"]) for r in runs.values()} == {seen["trace_id"]}, "one trace"
    root = runs[seen["id"]]
    assert root["name"] == "agent" and root.get("parent_run_id") is None

    def children(parent: dict[str, Any]) -> list[dict[str, Any]]:
        found = [r for r in runs.values() if str(r.get("parent_run_id")) == str(parent["id"])]
        for r in found:  # the dotted order says the same as the parent link
            assert r["dotted_order"].startswith(parent["dotted_order"] + ".")
        return sorted(found, key=lambda r: r["dotted_order"])

    # The agent: model, tool, model, as LangChain traced them.
    steps = children(root)
    assert [(r["run_type"], r["name"]) for r in steps] == [
        ("llm", "ChatOpenAI"),
        ("tool", "echo"),
        ("llm", "ChatOpenAI"),
    ]
    first, tool, last = steps
    # Under each of the agent's model runs, the gateway's run of that call; under its tool run, the
    # gateway's run of the MCP call.
    (first_call,) = children(first)
    (mcp_call,) = children(tool)
    (last_call,) = children(last)
    assert first_call["run_type"] == last_call["run_type"] == "llm"
    assert mcp_call["run_type"] == "tool" and mcp_call["name"] == "docs/echo"
    assert {r["id"] for r in gateways(runs)} == {first_call["id"], mcp_call["id"], last_call["id"]}
    assert all(r["session_name"] == "agent-project" for r in gateways(runs))
    # The model asked for the tool through the gateway; the tool's answer went back to the model.
    assert "echo" in str(first_call["outputs"])
    assert "tool" in str(last_call["inputs"])
    # What the gateway's runs hold passed its redaction; no run holds the gateway key.
    assert mcp_call["inputs"] == {"name": "echo", "arguments": {"text": "write to [REDACTED:EMAIL]"}}
    assert mcp_call["outputs"]["content"][0]["text"] == "write to [REDACTED:EMAIL]"
    assert "[REDACTED:EMAIL]" in str(first_call["outputs"])
    for run in gateways(runs):
        assert EMAIL not in str(run)
    assert GATEWAY_KEY.encode() not in b"".join(standin.raw)
