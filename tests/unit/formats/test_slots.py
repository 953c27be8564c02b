"""Where text lives: every string of a body is text except the format's named non-text fields."""

import random

import orjson
import pytest

from sluicegate.formats import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    WireFormat,
)
from sluicegate.formats.slots import NumberSlot, RunSlot, Shape, TextSlot, locate, text_slots


def found(slots: list[TextSlot], body: object) -> list[tuple[str, str, bool]]:
    return [(locate(body, s), s.text, s.json) for s in slots]


def test_chat_request_every_string_but_ids_tags_roles_and_media() -> None:
    body = {
        "model": "gpt-x",
        "user": "u1",
        "metadata": {"id": "m1", "type": "t1"},  # free-form: its "id" and "type" are text
        "prediction": {"type": "content", "content": "draft"},
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
        ],
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "part"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png?who=x"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "JVBER", "file_id": "file-1", "filename": "a.pdf"}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result"},
        ],
        "future": {"id": "x"},  # unknown: everything in it is text
    }
    assert found(OPENAI_CHAT.request_slots(body), body) == [
        ("user", "u1", False),
        ("metadata.id", "m1", False),
        ("metadata.type", "t1", False),
        ("prediction.type", "content", False),
        ("prediction.content", "draft", False),
        ("tools[0].type", "function", False),
        ("tools[0].function.name", "f", False),
        ("tools[0].function.description", "d", False),
        ("tools[0].function.parameters.type", "object", False),
        ("messages[0].content", "sys", False),
        ("messages[1].content[0].text", "part", False),
        ("messages[1].content[2].image_url.url", "https://example.com/a.png?who=x", False),
        ("messages[1].content[4].file.filename", "a.pdf", False),
        ("messages[2].tool_calls[0].function.name", "f", False),
        ("messages[2].tool_calls[0].function.arguments", "{}", True),
        ("messages[3].content", "result", False),
        ("future.id", "x", False),
    ]


def test_anthropic_blocks_nest_and_base64_depends_on_the_source_type() -> None:
    body = {
        "model": "claude",
        "metadata": {"user_id": "u"},
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "res"}]},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "EqQB"},
                    {"type": "redacted_thinking", "data": "EmwK"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"id": "deep", "b": [1, "x"]}},
                ],
            },
        ],
    }
    assert found(ANTHROPIC_MESSAGES.request_slots(body), body) == [
        ("metadata.user_id", "u", False),
        ("system[0].text", "sys", False),
        ("messages[0].content[1].source.data", "doc", False),
        ("messages[0].content[2].content[0].text", "res", False),
        ("messages[1].content[0].thinking", "hmm", False),
        ("messages[1].content[2].name", "f", False),
        ("messages[1].content[2].input.id", "deep", False),
        ("messages[1].content[2].input.b[1]", "x", False),
    ]
    count = {"system": "s", "messages": []}
    assert found(ANTHROPIC_COUNT_TOKENS.request_slots(count), count) == [("system", "s", False)]


def test_responses_prompt_variables_are_text_whatever_they_are_named() -> None:
    body = {
        "model": "gpt-x",
        "previous_response_id": "resp_1",
        "instructions": "be brief",
        "prompt": {
            "id": "pmpt_1",
            "variables": {"type": "v1", "pic": {"type": "input_image", "image_url": "data:image/png;base64,AA"}},
        },
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": '{"x":1}'},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "out"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "why"}],
                "encrypted_content": "gAAA",
            },
            {"type": "image_generation_call", "id": "ig_1", "result": "iVBOR", "status": "completed"},
        ],
    }
    assert found(OPENAI_RESPONSES.request_slots(body), body) == [
        ("instructions", "be brief", False),
        ("prompt.variables.type", "v1", False),
        ("input[0].content[0].text", "q", False),
        ("input[1].name", "f", False),
        ("input[1].arguments", '{"x":1}', True),
        ("input[2].output", "out", False),
        ("input[3].summary[0].text", "why", False),
    ]
    plain = {"input": "just text"}
    assert found(OPENAI_RESPONSES.request_slots(plain), plain) == [("input", "just text", False)]


def test_embeddings_input_and_user() -> None:
    body = {"model": "e", "input": ["a", "", "b"], "user": "u", "encoding_format": "float"}
    assert found(OPENAI_EMBEDDINGS.request_slots(body), body) == [
        ("input[0]", "a", False),
        ("input[2]", "b", False),
        ("user", "u", False),
    ]
    assert OPENAI_EMBEDDINGS.request_slots({"input": [[1, 2]]}) == []


def test_responses_of_each_format() -> None:
    chat = {
        "id": "c",
        "model": "m",
        "choices": [
            {
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "reasoning_content": "r",
                    "function_call": {"name": "f", "arguments": "{}"},
                },
            }
        ],
    }
    assert found(OPENAI_CHAT.response_slots(chat), chat) == [
        ("choices[0].message.content", "hi", False),
        ("choices[0].message.reasoning_content", "r", False),
        ("choices[0].message.function_call.name", "f", False),
        ("choices[0].message.function_call.arguments", "{}", True),
    ]
    message = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "stop_sequence": "STOP",
        "content": [{"type": "text", "text": "r"}, {"type": "tool_use", "id": "t", "input": {"k": "v"}}],
    }
    assert found(ANTHROPIC_MESSAGES.response_slots(message), message) == [
        ("stop_sequence", "STOP", False),
        ("content[0].text", "r", False),
        ("content[1].input.k", "v", False),
    ]


def test_large_integers_are_scanned_as_text_and_written_back_as_strings() -> None:
    body = {"metadata": {"card": 4111111111111111, "n": 7, "flag": True}, "seed": 12}
    (slot,) = OPENAI_CHAT.request_slots(body)
    assert isinstance(slot, NumberSlot) and slot.text == "4111111111111111"
    slot.set("[REDACTED:CREDIT_CARD]")
    assert body["metadata"]["card"] == "[REDACTED:CREDIT_CARD]"


def test_slots_hold_decoded_strings_and_write_back() -> None:
    body = orjson.loads(b'{"messages": [{"role": "user", "content": "mail me: a\\u0040b.co\\nok"}]}')
    (slot,) = OPENAI_CHAT.request_slots(body)
    assert slot.text == "mail me: a@b.co\nok"
    slot.set("mail me: [X]\nok")
    assert body["messages"][0]["content"] == "mail me: [X]\nok"


def test_logprob_runs_are_one_text_and_keep_their_tokens_outside_the_change() -> None:
    shape = Shape(runs={"content"})
    entries = [
        {"token": t, "bytes": list(t.encode()), "logprob": -0.1} for t in ("my ", "ss", "n 536", "-22-", "1234", " ok")
    ]
    (run,) = [s for s in text_slots({"content": entries}, shape) if isinstance(s, RunSlot)]
    assert run.text == "my ssn 536-22-1234 ok"
    run.set("my ssn [X] ok")
    assert [e["token"] for e in entries] == ["my ", "ss", "n [X]", "", "", " ok"]
    assert all(e["bytes"] == list(e["token"].encode()) for e in entries)


def test_a_run_written_back_always_reads_as_what_was_written() -> None:
    r = random.Random(7)
    for _ in range(3000):
        text = "".join(r.choice("ab-1 ") for _ in range(r.randint(0, 12)))
        cuts = sorted(r.sample(range(len(text) + 1), min(len(text) + 1, r.randint(0, 5))))
        tokens = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        entries = [{"token": t, "bytes": list(t.encode())} for t in tokens]
        run = RunSlot(entries)
        new = "".join(r.choice("XYab") for _ in range(r.randint(0, 12)))
        run.set(new)
        assert run.text == new
        assert all(e["bytes"] == list(e["token"].encode()) for e in entries)


@pytest.mark.parametrize("fmt", [OPENAI_CHAT, OPENAI_RESPONSES, OPENAI_EMBEDDINGS, ANTHROPIC_MESSAGES])
@pytest.mark.parametrize(
    "junk",
    [
        {},
        {"messages": "x"},
        {"messages": [1, None]},
        {"input": {"a": 1}},
        {"system": 3},
        {"content": [{"type": ["x"]}]},
    ],
)
def test_odd_shapes_never_raise(fmt: WireFormat, junk: dict) -> None:  # type: ignore[type-arg]
    for slot in [*fmt.request_slots(junk), *fmt.response_slots(junk)]:
        assert isinstance(slot.text, str)
