"""The LangSmith sink's wire and delivery: what it posts has the parts and fields the `langsmith`
SDK posts for the same run (both read back by a strict multipart parser), a failed POST is retried
or counted, a big batch is split, and the batch mechanism keeps up under load and finishes a write
under way when it stops."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import langsmith
import pytest
from tests.integration.test_langsmith import INFO, StandIn

from sluicegate.config import LangSmithSettings
from sluicegate.formats.base import Usage
from sluicegate.observe.events import PolicyEvent
from sluicegate.observe.langsmith import LangSmithSink
from sluicegate.observe.sinks import BatchSink
from sluicegate.proxy.relay import CallInfo, Outcome

PARENT_TRACE = "01a21bb4-fd68-755d-b0c1-f71aa7e8dc2f"
PARENT_RUN = "01a21bb4-fd71-7000-8000-000000000001"
PARENT = f"20261127T063255912742Z{PARENT_TRACE}.20261127T063255921870Z{PARENT_RUN}"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    s = StandIn(info=INFO)
    yield s
    s.close()


def call(n: int, status: int = 200, parent: str | None = None, pad: int = 0) -> Outcome:
    now = time.time()
    info = CallInfo(
        request_id=f"req-{n}",
        route="openai_chat",
        workspace="ws",
        key="k",
        model="gpt-x",
        provider="p",
        provider_kind="openai",
        started_at=now - 0.2,
        ended_at=now,
        run_id=str(uuid.uuid4()),
        trace=parent,
    )
    error = "upstream_error" if status >= 400 else None
    outcome = Outcome(status, usage=Usage(12, 3), cost_nusd=4_500, info=info, error=error)
    outcome.request_body = b'{"model":"gpt-x","messages":[{"role":"user","content":"hi ' + b"x" * pad + b'"}]}'
    outcome.response = [b'{"choices":[{"index":0,"message":{"role":"assistant","content":"hello"}}]}']
    outcome.events = [PolicyEvent("redaction", "redact", "request", "EMAIL_ADDRESS", 2, ["messages[0].content"])]
    return outcome


async def post(standin: StandIn, outcomes: list[Outcome], **settings: Any) -> LangSmithSink:
    config = LangSmithSettings(enabled=True, endpoint=standin.url, api_key="ls-key", interval_s=0.01, **settings)
    sink = LangSmithSink(config, "ls-key", lambda text: text)
    await sink.start()
    for outcome in outcomes:
        sink.submit(outcome)
    await sink.stop()
    return sink


def shape(standin: StandIn, run_id: str) -> tuple[set[str], set[str]]:
    """The part suffixes of a run (`` for the run itself) and the fields of its run part."""
    names = {n for post in standin.parts for n in post if n.startswith(f"post.{run_id}")}
    return {n[len(f"post.{run_id}") :].lstrip(".") for n in names}, set(standin.runs[run_id])


async def test_the_sink_posts_the_parts_and_fields_the_sdk_posts(standin: StandIn) -> None:
    # The SDK's run, with the same kinds of content, an error and a feedback.
    client = langsmith.Client(api_url=standin.url, api_key="ls-key", auto_batch_tracing=True)
    sdk_id = uuid.uuid4()
    now = datetime.now(UTC)
    client.create_run(
        name="sdk",
        inputs={"messages": []},
        run_type="llm",
        project_name="p",
        id=sdk_id,
        trace_id=sdk_id,
        dotted_order=now.strftime("%Y%m%dT%H%M%S%fZ") + str(sdk_id),
        start_time=now,
        end_time=now,
        outputs={"choices": []},
        extra={"metadata": {"ls_model_name": "gpt-x"}},
        tags=["t"],
        error="boom",
    )
    with pytest.warns(langsmith.utils.LangSmithWarning):  # no session_id: the SDK warns, we never send one
        client.create_feedback(sdk_id, key="k", score=1, value={"X": 1}, comment="c", trace_id=sdk_id)
    await asyncio.to_thread(client.flush)

    ours = call(1, status=502, parent=PARENT)
    sink = await post(standin, [ours])
    assert sink.posted == 1 and sink.failed == 0
    run_id = ours.info.run_id if ours.info else ""

    sdk_parts, sdk_fields = shape(standin, str(sdk_id))
    our_parts, our_fields = shape(standin, run_id)
    assert our_parts == sdk_parts == {"", "inputs", "outputs", "extra", "error"}
    assert sdk_fields <= our_fields
    run = standin.runs[run_id]
    assert run["trace_id"] == PARENT_TRACE and run["parent_run_id"] == PARENT_RUN
    assert run["dotted_order"].startswith(PARENT + ".") and run["dotted_order"].endswith(run_id)
    assert run["run_type"] == "llm" and run["error"] == "upstream_error"
    assert run["inputs"]["messages"][0]["content"] == "hi "
    assert run["outputs"]["choices"][0]["message"]["content"] == "hello"
    assert set(run["extra"]) == {"metadata", "runtime"}
    usage = run["extra"]["metadata"]["usage_metadata"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_cost"]) == (12, 3, 4.5e-6)
    assert datetime.fromisoformat(run["start_time"]) < datetime.fromisoformat(run["end_time"])

    sdk_feedback = next(f for f in standin.feedback if f["run_id"] == str(sdk_id))
    our_feedback = next(f for f in standin.feedback if f["run_id"] == run_id)
    assert set(our_feedback) <= set(sdk_feedback)
    assert {k for k, v in sdk_feedback.items() if v is not None} <= set(our_feedback)
    assert our_feedback["key"] == "sluicegate.redaction.redact" and our_feedback["trace_id"] == PARENT_TRACE
    assert our_feedback["value"] == {"EMAIL_ADDRESS": 2} and our_feedback["score"] == 2


async def test_a_failed_post_is_retried_on_5xx_and_counted_when_it_gives_up(standin: StandIn) -> None:
    standin.statuses = [500, 503]
    sink = await post(standin, [call(1)])
    assert (sink.posted, sink.failed, standin.posts) == (1, 0, 3)

    standin.statuses = [401]  # not retried: the key is wrong, and stays wrong
    sink = await post(standin, [call(2), call(3)])
    assert (sink.posted, sink.failed, standin.posts) == (0, 2, 4)

    standin.statuses = [500, 500, 500]
    sink = await post(standin, [call(4)])
    assert (sink.posted, sink.failed, standin.posts) == (0, 1, 7)
    assert len(standin.runs) == 1


async def test_a_batch_is_split_into_posts_by_size(standin: StandIn) -> None:
    outcomes = [call(n, pad=4_000) for n in range(10)]
    sink = await post(standin, outcomes, batch_bytes=13_000)
    assert sink.posted == 10 and sink.failed == 0
    assert standin.posts == 5  # two runs of ~6.2 KB a post
    assert {o.info.run_id for o in outcomes if o.info} == set(standin.runs)


class Recorder(BatchSink[int]):
    def __init__(self, batch: int, interval_s: float, write_s: float = 0.0, until: int = 0) -> None:
        super().__init__("test", 10_000, batch, interval_s)
        self.writes: list[list[int]] = []
        self.write_s = write_s
        self.until = until
        self.done = asyncio.Event()

    async def write(self, items: list[int]) -> None:
        await asyncio.sleep(self.write_s)
        self.writes.append(items)
        if sum(map(len, self.writes)) >= self.until:
            self.done.set()


async def test_a_batch_sink_writes_full_batches_back_to_back() -> None:
    sink = Recorder(batch=10, interval_s=0.5, until=200)
    await sink.start()
    for n in range(200):
        sink.submit(n)
    t = time.perf_counter()
    await asyncio.wait_for(sink.done.wait(), 15)
    elapsed = time.perf_counter() - t
    await sink.stop()
    assert [n for batch in sink.writes for n in batch] == list(range(200))
    assert all(len(batch) == 10 for batch in sink.writes)
    assert elapsed < 0.5  # not one batch per interval (that would take 10 s)


async def test_stopping_a_batch_sink_finishes_the_write_under_way() -> None:
    sink = Recorder(batch=5, interval_s=0.01, write_s=0.3)
    await sink.start()
    for n in range(12):
        sink.submit(n)
    await asyncio.sleep(0.1)  # the first batch is being written
    await sink.stop()
    assert sorted(n for batch in sink.writes for n in batch) == list(range(12))
    assert sink.failed == 0


async def test_stopping_is_bounded_when_the_destination_hangs() -> None:
    sink = Recorder(batch=5, interval_s=0.01, write_s=30)
    await sink.start()
    for n in range(12):
        sink.submit(n)
    await asyncio.sleep(0.1)  # the first batch hangs in its write
    t = time.perf_counter()
    await sink.stop(timeout_s=0.3)
    assert time.perf_counter() - t < 2
    assert sink.writes == [] and sink.dropped == 12  # the queued ones and the batch under way


async def test_stopping_writes_a_call_whose_batch_is_still_gathering() -> None:
    sink = Recorder(batch=100, interval_s=30)
    await sink.start()
    sink.submit(1)
    await asyncio.sleep(0.05)  # taken off the queue; its batch waits for more
    assert sink.depth == 0
    await sink.stop(timeout_s=5)
    assert sink.writes == [[1]] and sink.dropped == 0
