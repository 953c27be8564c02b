"""Where text lives: every text field of every format is found, by location, decoded."""

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

CHAT_REQUEST = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": '{"q":"a"}'}}]},
        {"role": "tool", "tool_call_id": "1", "content": "result"},
    ],
}
CHAT_RESPONSE = {"choices": [{"message": {"content": "hi", "tool_calls": [{"function": {"arguments": "{}"}}]}}]}
RESPONSES_REQUEST = {
    "instructions": "be brief",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
        {"type": "function_call", "arguments": '{"x":1}'},
        {"type": "function_call_output", "output": "out"},
        {"type": "reasoning", "summary": []},
    ],
}
RESPONSES_RESPONSE = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "answer"}]}]}
MESSAGES_REQUEST = {
    "system": [{"type": "text", "text": "sys"}],
    "messages": [
        {"role": "user", "content": "plain"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "t"}, {"type": "tool_use", "input": {"a": "deep", "b": [1, "x"]}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "content": [{"type": "text", "text": "res"}]}]},
    ],
}
MESSAGES_RESPONSE = {"content": [{"type": "text", "text": "r"}, {"type": "tool_use", "input": {"k": "v"}}]}


def found(slots) -> list[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    return [(s.where, s.text, s.json) for s in slots]


@pytest.mark.parametrize(
    ("fmt", "body", "expected"),
    [
        (
            OPENAI_CHAT,
            CHAT_REQUEST,
            [
                ("messages[0].content", "sys", False),
                ("messages[1].content[0].text", "part", False),
                ("messages[2].tool_calls[0].function.arguments", '{"q":"a"}', True),
                ("messages[3].content", "result", False),
            ],
        ),
        (
            OPENAI_RESPONSES,
            RESPONSES_REQUEST,
            [
                ("instructions", "be brief", False),
                ("input[0].content[0].text", "q", False),
                ("input[1].arguments", '{"x":1}', True),
                ("input[2].output", "out", False),
            ],
        ),
        (OPENAI_RESPONSES, {"input": "just text"}, [("input", "just text", False)]),
        (OPENAI_EMBEDDINGS, {"input": ["a", "", "b"]}, [("input[0]", "a", False), ("input[2]", "b", False)]),
        (OPENAI_EMBEDDINGS, {"input": [[1, 2]]}, []),
        (
            ANTHROPIC_MESSAGES,
            MESSAGES_REQUEST,
            [
                ("system[0].text", "sys", False),
                ("messages[0].content", "plain", False),
                ("messages[1].content[0].text", "t", False),
                ("messages[1].content[1].input.a", "deep", False),
                ("messages[1].content[1].input.b[1]", "x", False),
                ("messages[2].content[0].content[0].text", "res", False),
            ],
        ),
        (ANTHROPIC_COUNT_TOKENS, {"system": "s", "messages": []}, [("system", "s", False)]),
    ],
)
def test_request_slots(fmt: WireFormat, body: dict, expected: list) -> None:  # type: ignore[type-arg]
    assert found(fmt.request_slots(body)) == expected


@pytest.mark.parametrize(
    ("fmt", "body", "expected"),
    [
        (
            OPENAI_CHAT,
            CHAT_RESPONSE,
            [
                ("choices[0].message.content", "hi", False),
                ("choices[0].message.tool_calls[0].function.arguments", "{}", True),
            ],
        ),
        (OPENAI_RESPONSES, RESPONSES_RESPONSE, [("output[0].content[0].text", "answer", False)]),
        (ANTHROPIC_MESSAGES, MESSAGES_RESPONSE, [("content[0].text", "r", False), ("content[1].input.k", "v", False)]),
    ],
)
def test_response_slots(fmt: WireFormat, body: dict, expected: list) -> None:  # type: ignore[type-arg]
    assert found(fmt.response_slots(body)) == expected


def test_slots_hold_decoded_strings_and_write_back() -> None:
    body = orjson.loads(b'{"messages": [{"role": "user", "content": "mail me: a\\u0040b.co\\nok"}]}')
    (slot,) = OPENAI_CHAT.request_slots(body)
    assert slot.text == "mail me: a@b.co\nok"
    slot.set("mail me: [X]\nok")
    assert body["messages"][0]["content"] == "mail me: [X]\nok"


@pytest.mark.parametrize("fmt", [OPENAI_CHAT, OPENAI_RESPONSES, OPENAI_EMBEDDINGS, ANTHROPIC_MESSAGES])
@pytest.mark.parametrize("junk", [{}, {"messages": "x"}, {"messages": [1, None]}, {"input": {"a": 1}}, {"system": 3}])
def test_odd_shapes_find_nothing_and_never_raise(fmt: WireFormat, junk: dict) -> None:  # type: ignore[type-arg]
    assert list(fmt.request_slots(junk)) == []
    assert list(fmt.response_slots(junk)) == []
