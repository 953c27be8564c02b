"""Knob parsing: headers, the model suffix, precedence and validation."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sluicegate.mock.knobs import DEFAULT_KNOBS, FAULTS, KnobError, Knobs, parse_knob_text, parse_knobs, split_model


def test_no_knobs_gives_the_shared_defaults() -> None:
    knobs, model = parse_knobs({"authorization": "Bearer k", "content-type": "application/json"}, "mock-gpt")
    assert knobs is DEFAULT_KNOBS
    assert model == "mock-gpt"
    assert knobs == Knobs(
        chunks=8,
        chunk_size=6,
        reply=None,
        delay_ms=0,
        first_byte_ms=0,
        echo=False,
        tool_call=False,
        fault=None,
        fault_after=2,
        cached_tokens=0,
    )


def test_no_model() -> None:
    knobs, model = parse_knobs({"x-mock-chunks": "3"}, None)
    assert model is None
    assert knobs.chunks == 3


@pytest.mark.parametrize(
    ("header", "value", "field", "expected"),
    [
        ("x-mock-chunks", "5", "chunks", 5),
        ("x-mock-chunks", "0", "chunks", 0),
        ("x-mock-chunk-size", "3", "chunk_size", 3),
        ("x-mock-chunk_size", "4", "chunk_size", 4),
        ("x-mock-reply", "hello, world@x", "reply", "hello, world@x"),
        ("x-mock-reply", "", "reply", ""),
        ("x-mock-delay-ms", "15", "delay_ms", 15),
        ("x-mock-first-byte-ms", "250", "first_byte_ms", 250),
        ("x-mock-echo", "1", "echo", True),
        ("x-mock-echo", "TRUE", "echo", True),
        ("x-mock-echo", "off", "echo", False),
        ("x-mock-tool-call", "yes", "tool_call", True),
        ("x-mock-fault", "429", "fault", "429"),
        ("x-mock-fault", "Slow_First_Byte", "fault", "slow_first_byte"),
        ("x-mock-fault-after", "0", "fault_after", 0),
        ("x-mock-cached-tokens", "128", "cached_tokens", 128),
    ],
)
def test_header_knobs(header: str, value: str, field: str, expected: Any) -> None:
    knobs, model = parse_knobs({header: value}, "m")
    assert getattr(knobs, field) == expected
    assert model == "m"
    # Everything else keeps its default.
    others = {f.name for f in dataclasses.fields(Knobs)} - {field}
    assert all(getattr(knobs, name) == getattr(DEFAULT_KNOBS, name) for name in others)


@pytest.mark.parametrize(
    ("model", "base", "expected"),
    [
        ("mock-gpt@chunks=5,delay_ms=10", "mock-gpt", {"chunks": 5, "delay_ms": 10}),
        ("mock-gpt@chunk-size=2", "mock-gpt", {"chunk_size": 2}),
        ("mock-gpt@echo", "mock-gpt", {"echo": True}),
        ("mock-gpt@echo,tool_call", "mock-gpt", {"echo": True, "tool_call": True}),
        ("mock-gpt@echo=0", "mock-gpt", {"echo": False}),
        ("mock-gpt@fault=disconnect,fault_after=4", "mock-gpt", {"fault": "disconnect", "fault_after": 4}),
        ("mock-gpt@reply=a%2Cb%3Dc", "mock-gpt", {"reply": "a,b=c"}),
        ("mock-gpt@reply=me@host", "mock-gpt", {"reply": "me@host"}),
        ("mock-gpt@cached_tokens=7,", "mock-gpt", {"cached_tokens": 7}),
        ("mock-gpt@", "mock-gpt", {}),
        ("plain-model", "plain-model", {}),
    ],
)
def test_model_suffix_knobs(model: str, base: str, expected: dict[str, Any]) -> None:
    knobs, name = parse_knobs({}, model)
    assert name == base
    assert knobs == dataclasses.replace(DEFAULT_KNOBS, **expected)


def test_header_wins_and_sources_combine() -> None:
    headers = {"x-mock-chunks": "9", "x-mock-echo": "0"}
    knobs, model = parse_knobs(headers, "claude@chunks=2,echo,delay_ms=30")
    assert model == "claude"
    assert knobs.chunks == 9  # header over model
    assert knobs.echo is False  # header over model
    assert knobs.delay_ms == 30  # model only


def test_header_reply_is_read_as_utf8() -> None:
    # An ASGI server hands header bytes over as latin-1 text; UTF-8 sent by the client comes back whole.
    as_latin1 = "héllo ✓".encode().decode("latin-1")
    knobs, _ = parse_knobs({"x-mock-reply": as_latin1}, "m")
    assert knobs.reply == "héllo ✓"
    # A latin-1 value that is not UTF-8 is kept as it came.
    knobs, _ = parse_knobs({"x-mock-reply": "caf\xe9"}, "m")
    assert knobs.reply == "caf\xe9"


def test_knobs_are_frozen() -> None:
    knobs, _ = parse_knobs({"x-mock-chunks": "3"}, "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        knobs.chunks = 4  # type: ignore[misc]


def test_split_model() -> None:
    assert split_model("a@chunks=1,reply=x%40y") == ("a", {"chunks": "1", "reply": "x@y"})
    assert split_model("no-knobs") == ("no-knobs", {})


def test_every_fault_parses() -> None:
    assert {"429", "500", "503", "529", "context_length", "content_policy", "slow_first_byte", "disconnect"} | {
        "malformed",
        "error_event",
        "500_billed",
    } == FAULTS
    for fault in FAULTS:
        assert parse_knobs({"x-mock-fault": fault}, None)[0].fault == fault


@pytest.mark.parametrize(
    ("headers", "model", "knob", "fragment"),
    [
        ({"x-mock-chunks": "x"}, "m", "chunks", "expected an integer, got 'x'"),
        ({"x-mock-chunks": "-1"}, "m", "chunks", "between 0 and"),
        ({"x-mock-chunks": "1.5"}, "m", "chunks", "expected an integer"),
        ({"x-mock-chunk-size": "0"}, "m", "chunk_size", "between 1 and"),
        ({"x-mock-delay-ms": "600001"}, "m", "delay_ms", "between 0 and 600000"),
        ({"x-mock-echo": "maybe"}, "m", "echo", "expected a boolean"),
        ({"x-mock-fault": "418"}, "m", "fault", "expected one of"),
        ({"x-mock-cached-tokens": ""}, "m", "cached_tokens", "expected an integer"),
        ({"x-mock-frobnicate": "1"}, "m", "frobnicate", "unknown knob"),
        ({}, "m@chunks=abc", "chunks", "expected an integer"),
        ({}, "m@chunks", "chunks", "needs a value"),
        ({}, "m@fault=explode", "fault", "expected one of"),
        ({}, "m@colour=blue", "colour", "unknown knob"),
        ({}, "m@20240620", "20240620", "unknown knob"),
        ({"x-mock-tool-call": "nope"}, "m@tool_call=1", "tool_call", "expected a boolean"),
    ],
)
def test_validation_errors_name_the_knob(headers: dict[str, str], model: str, knob: str, fragment: str) -> None:
    with pytest.raises(KnobError) as info:
        parse_knobs(headers, model)
    assert info.value.knob == knob
    assert fragment in str(info.value)
    assert repr(knob) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_header_value_replaces_a_bad_model_value() -> None:
    knobs, _ = parse_knobs({"x-mock-chunks": "4"}, "m@chunks=bad")
    assert knobs.chunks == 4


def test_process_knobs_lie_beneath_the_requests_own() -> None:
    defaults = parse_knob_text("fault=429, retry_after=1,chunks=3")
    assert defaults == {"fault": "429", "retry_after": "1", "chunks": "3"}
    knobs, model = parse_knobs({}, "mock-gpt", defaults)
    assert (knobs.fault, knobs.retry_after, knobs.chunks, model) == ("429", 1, 3, "mock-gpt")
    knobs, model = parse_knobs({"x-mock-chunks": "5"}, "mock-gpt@fault=500", defaults)
    assert (knobs.fault, knobs.retry_after, knobs.chunks, model) == ("500", 1, 5, "mock-gpt")
    assert parse_knob_text("") == {}
    with pytest.raises(KnobError) as err:
        parse_knob_text("fault=nope")
    assert err.value.knob == "fault"
    with pytest.raises(KnobError):
        parse_knob_text("colour=blue")
