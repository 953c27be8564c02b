"""An agent built with LangChain uses both the model and an MCP server's tools through the gateway,
and the whole of it is one LangSmith trace.

The agent: LangChain's `create_agent` (a LangGraph ReAct loop: the model is called until it stops
asking for tools) over `ChatOpenAI` pointed at the gateway's `/v1` with a gateway key, and the tools
of the gateway's `/mcp/docs` (a real server built with the official `mcp` SDK behind it) as
LangChain tools. LangChain traces the agent with the `langsmith` SDK; each HTTP request the agent
makes, to the model or to the MCP server, carries the `langsmith-trace` and `baggage` headers of
the run it belongs to, so the gateway's own runs (an `llm` run per model call, a `tool` run per tool
call) nest inside the agent's trace:

    agent > LangGraph > model > ChatOpenAI > the gateway's llm run (the model asks for `echo`)
                      > tools > echo > the gateway's `docs/echo` tool run
                      > model > ChatOpenAI > the gateway's llm run (the answer)

The model answers plainly in one run and streams in the other. The LangSmith stand-in records
what both sides post; the test reads the trace from it.

(The MCP side is wrapped by hand, one session per tool call as `langchain-mcp-adapters` does: that
package requires `mcp<2`, and the gateway's tests use the `mcp` SDK 2.)"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

import httpx2
import langsmith
import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage
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


def model_trace_headers(tracer: LangChainTracer) -> Callable[[httpx2.Request], Awaitable[None]]:
    """An httpx request hook: the tracing headers of the chat model run in progress."""

    async def hook(request: httpx2.Request) -> None:
        run_id = _MODEL_RUN.get()
        run = tracer.run_map.get(str(run_id)) if run_id is not None else None
        request.headers.update(run.to_headers() if run is not None else trace_headers())

    return hook


@contextlib.asynccontextmanager
async def mcp_session(url: str) -> AsyncIterator[ClientSession]:
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


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "streamed"])
async def test_an_agents_model_and_tool_calls_are_one_trace(
    traced_gateway: Server, standin: StandIn, streaming: bool
) -> None:
    with standin.lock:
        standin.runs.clear()
    agent_client = langsmith.Client(api_url=standin.url, api_key="agent-key")
    tracer = LangChainTracer(project_name="agent-project", client=agent_client)
    http = httpx2.AsyncClient(event_hooks={"request": [model_trace_headers(tracer)]}, timeout=20)
    model = ChatOpenAI(
        # The mock model calls the first tool the request defines, with `{"text": <reply>}`, and
        # answers once it has the result (`then_answer`). The reply is percent-encoded in the
        # model name (the knobs' syntax): only what the model says holds the address.
        model=f"mh/mock-gpt@tool_call=1,then_answer,reply=write to {quote(EMAIL)}",
        base_url=f"{traced_gateway.url}/v1",
        api_key=SecretStr(GATEWAY_KEY),
        http_async_client=http,
        streaming=streaming,
        max_retries=0,
    )
    seen: dict[str, str] = {}

    @langsmith.traceable(name="agent", run_type="chain", client=agent_client)
    async def agent(question: str) -> list[BaseMessage]:
        root = get_current_run_tree()
        assert root is not None
        seen["id"], seen["trace_id"] = str(root.id), str(root.trace_id)
        graph = create_agent(model, await mcp_tools(f"{traced_gateway.url}/mcp/docs"))
        config: RunnableConfig = {"callbacks": [tracer, ModelRunTracker()], "recursion_limit": 6}
        state = await graph.ainvoke({"messages": [HumanMessage(question)]}, config)
        return list(state["messages"])

    with langsmith.tracing_context(enabled=True, project_name="agent-project", client=agent_client):
        messages = await agent("What does the docs server echo?")
    await http.aclose()
    agent_client.flush()
    # The conversation: the question, the model's tool call, the tool's result, the model's answer.
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[-1].content and not getattr(messages[-1], "tool_calls", None)

    def gateways(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in runs.values() if ((r.get("extra") or {}).get("metadata") or {}).get("sluicegate_request_id")]

    def whole_trace(s: StandIn) -> dict[str, dict[str, Any]] | None:
        done = {i: r for i, r in s.runs.items() if r.get("end_time")}
        ended = seen["id"] in done and len([r for r in gateways(done) if r.get("outputs")]) == 3
        return dict(done) if ended and all(r.get("end_time") for r in s.runs.values()) else None

    runs = standin.wait_for(whole_trace)
    # One trace: every run, the agent's and the gateway's, has its trace id and a parent inside it,
    # and its dotted order extends its parent's.
    assert {str(r["trace_id"]) for r in runs.values()} == {seen["trace_id"]}
    assert runs[seen["id"]]["name"] == "agent" and runs[seen["id"]].get("parent_run_id") is None
    for run in runs.values():
        if run["id"] != seen["id"]:
            parent = runs[str(run["parent_run_id"])]
            assert run["dotted_order"].startswith(parent["dotted_order"] + ".")

    def children(parent: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in runs.values() if str(r.get("parent_run_id")) == str(parent["id"])]

    # The agent's steps as LangChain traced them: model, tool, model. Under each model run, the
    # gateway's run of that call; under the tool run, the gateway's run of the MCP call.
    mine = [r for r in runs.values() if r not in gateways(runs) and r["run_type"] in ("llm", "tool")]
    first, tool, last = sorted(mine, key=lambda r: r["dotted_order"].rsplit(".", 1)[-1])
    assert [(r["run_type"], r["name"]) for r in (first, tool, last)] == [
        ("llm", "ChatOpenAI"),
        ("tool", "echo"),
        ("llm", "ChatOpenAI"),
    ]
    (first_call,), (mcp_call,), (last_call,) = children(first), children(tool), children(last)
    assert {r["id"] for r in gateways(runs)} == {first_call["id"], mcp_call["id"], last_call["id"]}
    assert first_call["run_type"] == last_call["run_type"] == "llm"
    assert (mcp_call["run_type"], mcp_call["name"]) == ("tool", "docs/echo")
    assert all(r["session_name"] == "agent-project" for r in gateways(runs))
    # The model asked for the tool through the gateway, and the tool's result went back to it.
    (call,) = first_call["outputs"]["choices"][0]["message"]["tool_calls"]
    assert call["function"]["arguments"] == '{"text":"write to [REDACTED:EMAIL]"}'
    assert call["function"]["name"] == "echo"  # streamed too: the run keeps the call's name and id
    assert call["id"]
    assert last_call["inputs"]["messages"][-1]["role"] == "tool"
    # What the gateway's runs hold passed its redaction; no run holds the gateway key.
    assert mcp_call["inputs"] == {"name": "echo", "arguments": {"text": "write to [REDACTED:EMAIL]"}}
    assert mcp_call["outputs"]["content"][0]["text"] == "write to [REDACTED:EMAIL]"
    for run in gateways(runs):
        assert EMAIL not in str(run)
    assert GATEWAY_KEY.encode() not in b"".join(standin.raw)
