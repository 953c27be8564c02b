"""The input estimate against the mock provider's count (ceil(chars / 4) per text piece), the
output limits read from each format, and clamping."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate.errors import InvalidRequest
from sluicegate.mock.chat import CHAT
from sluicegate.mock.messages import MESSAGES
from sluicegate.mock.reply import tokens
from sluicegate.mock.responses import RESPONSES
from sluicegate.spend.caps import EstimateSettings
from sluicegate.spend.estimate import _ATTACHMENTS, _NOT_TEXT, Estimate, _Counter, clamp_output, estimate, text_tokens

EXACT = EstimateSettings(per_message_tokens=0, per_request_tokens=0)
ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
ANY_TEXT = st.text(max_size=60)


def mock_count(fmt: str, body: dict[str, Any]) -> int:
    wire = {"openai_chat": CHAT, "openai_responses": RESPONSES, "anthropic_messages": MESSAGES}[fmt]
    return max(1, wire.input_tokens(body))


def parts(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Message content as the SDKs send it: a string or a list of typed parts."""
    part = st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.builds(lambda t: {"type": "input_text", "text": t}, text),
        st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "c2lnbmF0dXJl" * 4}, text),
        st.builds(lambda t: {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": t}}, text),
        st.builds(
            lambda t: {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": t}]}, text
        ),
    )
    return st.one_of(text, st.lists(part, max_size=4))


def chat_messages(text: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    msg = st.one_of(
        st.builds(lambda c: {"role": "user", "content": c}, parts(text)),
        st.builds(lambda c: {"role": "system", "content": c}, text),
        st.builds(
            lambda a: {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": a}}],
            },
            text,
        ),
        st.builds(lambda c: {"role": "tool", "tool_call_id": "call_1", "content": c}, text),
    )
    return st.lists(msg, min_size=1, max_size=6)


@given(chat_messages(ANY_TEXT))
def test_chat_never_undercounts_the_mock(messages: list[dict[str, Any]]) -> None:
    body = {"model": "m", "messages": messages}
    assert estimate(body, "openai_chat", EXACT).input_tokens >= mock_count("openai_chat", body)
    assert estimate(body, "openai_chat").input_tokens >= mock_count("openai_chat", body)


@given(st.lists(st.builds(lambda c: {"role": "user", "content": c}, ASCII), min_size=1, max_size=6))
def test_plain_ascii_chat_is_counted_exactly_as_the_mock_does(messages: list[dict[str, Any]]) -> None:
    body = {"model": "m", "messages": messages}
    assert estimate(body, "openai_chat", EXACT).input_tokens == mock_count("openai_chat", body)
    # the default overheads add 4 a message and 3 a request, nothing else
    padded = estimate(body, "openai_chat").input_tokens
    assert padded == sum(tokens(m["content"]) for m in messages) + 4 * len(messages) + 3


@given(
    st.one_of(ANY_TEXT, parts(ANY_TEXT)),
    st.lists(st.builds(lambda c: {"role": "user", "content": c}, parts(ANY_TEXT)), min_size=1, max_size=4),
)
def test_anthropic_never_undercounts_the_mock(system: Any, messages: list[dict[str, Any]]) -> None:
    body = {"model": "m", "max_tokens": 10, "system": system, "messages": messages}
    est = estimate(body, "anthropic_messages", EXACT)
    assert est.input_tokens >= mock_count("anthropic_messages", body)
    assert est.output_tokens == 10


@given(
    ANY_TEXT,
    st.one_of(ANY_TEXT, st.lists(st.builds(lambda c: {"role": "user", "content": c}, parts(ANY_TEXT)), max_size=4)),
)
def test_responses_never_undercounts_the_mock(instructions: str, inp: Any) -> None:
    body = {"model": "m", "instructions": instructions, "input": inp}
    assert estimate(body, "openai_responses", EXACT).input_tokens >= mock_count("openai_responses", body)


@given(ANY_TEXT)
def test_a_text_piece_is_at_least_the_mock_count_and_at_most_one_token_per_char_more(text: str) -> None:
    n = text_tokens(text)
    assert tokens(text) <= n <= max(tokens(text), len(text))
    if text.isascii():
        assert n == tokens(text)


def test_the_bound_is_documented_by_example() -> None:
    # ASCII text: exactly the mock's count. 'é' and CJK characters: one token each.
    assert text_tokens("hello world!") == 3
    assert text_tokens("héllo") == 1 + 1  # 'hllo' -> 1, 'é' -> 1
    assert text_tokens("日本語のテキスト") == 8
    assert tokens("日本語のテキスト") == 2


def test_attachments_count_a_fixed_amount_never_their_base64() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 400_000}}
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]}
    est = estimate(
        body, "openai_chat", EstimateSettings(per_message_tokens=0, per_request_tokens=0, attachment_tokens=1000)
    )
    assert est.input_tokens == 2 + 1000
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "B" * 100_000}}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [doc]}]}
    assert estimate(body, "anthropic_messages", EXACT).input_tokens == 1600


def test_tools_are_counted_as_json() -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    without = estimate(body, "openai_chat", EXACT).input_tokens
    with_tools = estimate({**body, "tools": tools}, "openai_chat", EXACT).input_tokens
    assert with_tools - without == text_tokens(
        '[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{}}}}]'
    )


@pytest.mark.parametrize(
    ("fmt", "body", "expected"),
    [
        ("openai_chat", {"messages": [], "max_tokens": 100}, Estimate(3, 100, 1)),
        # both limits set: a provider may honour either, so the larger is reserved
        ("openai_chat", {"messages": [], "max_completion_tokens": 50, "max_tokens": 100, "n": 3}, Estimate(3, 300, 3)),
        ("openai_chat", {"messages": [], "max_completion_tokens": 100, "max_tokens": 50}, Estimate(3, 100, 1)),
        ("openai_chat", {"messages": []}, Estimate(3, None, 1)),
        ("openai_chat", {"messages": [], "max_tokens": None, "n": None}, Estimate(3, None, 1)),
        ("openai_chat", {"messages": [], "max_tokens": 2**31 - 1, "n": 128}, Estimate(3, 128 * (2**31 - 1), 128)),
        ("openai_responses", {"input": "abcd", "max_output_tokens": 7}, Estimate(1 + 4 + 3, 7, 1)),
        ("anthropic_messages", {"messages": [], "max_tokens": 1024}, Estimate(3, 1024, 1)),
        ("openai_embeddings", {"input": "abcdefgh"}, Estimate(2, 0, 1)),
        ("openai_embeddings", {"input": ["abcd", "ab"]}, Estimate(2, 0, 1)),
        ("openai_embeddings", {"input": [1, 2, 3, 4, 5]}, Estimate(5, 0, 1)),
        ("openai_embeddings", {"input": [[1, 2], [3]]}, Estimate(3, 0, 1)),
        ("anthropic_count_tokens", {"messages": []}, Estimate(0, 0, 1)),
    ],
)
def test_output_limits_and_choices(fmt: str, body: dict[str, Any], expected: Estimate) -> None:
    assert estimate(body, fmt) == expected


# What an attacker puts where the reservation reads a number: each is a 400 naming the parameter,
# never "no limit" (which reserved the model's default) and never a 500 (an amount out of range).
BAD_NUMBERS = [
    (1e13, "invalid_type"),
    (100.0, "invalid_type"),
    ("100", "invalid_type"),
    (True, "invalid_type"),
    ([5], "invalid_type"),
    ({"n": 1}, "invalid_type"),
    (0, "integer_below_min_value"),
    (-5, "integer_below_min_value"),
    (2**31, "integer_above_max_value"),
    (10**30, "integer_above_max_value"),
]
LIMITS = [
    ("openai_chat", "max_tokens"),
    ("openai_chat", "max_completion_tokens"),
    ("openai_chat", "n"),
    ("openai_responses", "max_output_tokens"),
    ("anthropic_messages", "max_tokens"),
]


@pytest.mark.parametrize(("fmt", "param"), LIMITS)
@pytest.mark.parametrize(("value", "code"), BAD_NUMBERS)
def test_bad_numbers_are_refused_naming_the_parameter(fmt: str, param: str, value: Any, code: str) -> None:
    body = {"messages": [], "input": "x", param: value}
    with pytest.raises(InvalidRequest) as err:
        estimate(body, fmt)
    assert (err.value.status, err.value.code, err.value.param) == (400, code, param)
    assert repr(value) not in err.value.message  # kinds and limits, never what was sent


def test_n_above_the_api_maximum_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="'n' must be an integer from 1 to 128"):
        estimate({"messages": [], "max_tokens": 10, "n": 129}, "openai_chat")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="no token estimate"):
        estimate({}, "openai_audio")


@pytest.mark.parametrize(
    ("fmt", "body", "tokens_", "written", "after"),
    [
        ("openai_chat", {"max_tokens": 1000}, 300, 300, {"max_tokens": 300}),
        ("openai_chat", {"max_tokens": 100}, 300, 100, {"max_tokens": 100}),
        ("openai_chat", {}, 300, 300, {"max_tokens": 300}),
        ("openai_chat", {"n": 3, "max_completion_tokens": 1000}, 300, 100, {"n": 3, "max_completion_tokens": 100}),
        (
            "openai_chat",
            {"max_completion_tokens": 900, "max_tokens": 50},
            300,
            50,
            {"max_completion_tokens": 300, "max_tokens": 50},
        ),
        ("openai_responses", {}, 10, 10, {"max_output_tokens": 10}),
        ("anthropic_messages", {"max_tokens": 4096}, 0, 1, {"max_tokens": 1}),
    ],
)
def test_clamp_output(fmt: str, body: dict[str, Any], tokens_: int, written: int, after: dict[str, Any]) -> None:
    assert clamp_output(body, fmt, tokens_) == written
    assert body == after
    with pytest.raises(ValueError, match="no output limit"):
        clamp_output({}, "openai_embeddings", 1)


# Any JSON value, with the keys and `type`s the walk treats apart drawn often.
_KEYS = st.one_of(st.sampled_from(sorted(_NOT_TEXT | {"text", "content", "input", "type"})), st.text(max_size=8))
_TYPES = st.sampled_from(sorted(_ATTACHMENTS | {"text", "tool_use", "tool_result", "thinking"}))
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), ANY_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(_KEYS, inner, max_size=5),
        st.builds(lambda t, d: {"type": t, **d}, _TYPES, st.dictionaries(_KEYS, inner, max_size=4)),
        st.builds(lambda d: {"type": "tool_use", "input": d}, st.dictionaries(_KEYS, inner, max_size=4)),
    ),
    max_leaves=40,
)


@given(_JSON)
def test_the_rust_walk_counts_what_the_python_walk_does(value: Any) -> None:
    native, spec = _Counter(EXACT), _Counter(EXACT)
    native.walk(value)
    spec.walk_py(value)
    assert (native.tokens, native.attachments) == (spec.tokens, spec.attachments)


def test_the_rust_walk_counts_characters_as_python_does() -> None:
    """Non-ASCII characters one token each (one to four bytes of UTF-8), ASCII a quarter, and a
    lone surrogate (no UTF-8 form) one character."""
    for text in ["abcd", "abcde", "é", "日本語", "😀x", "a\ud800b", "\udfff", ""]:
        native, spec = _Counter(EXACT), _Counter(EXACT)
        native.walk([text, {"text": text}])
        spec.walk_py([text, {"text": text}])
        assert native.tokens == spec.tokens == 2 * text_tokens(text), text
