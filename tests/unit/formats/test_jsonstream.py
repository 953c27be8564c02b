"""Streamed JSON: the filter sees decoded strings however the fragments are cut, escapes included."""

import itertools
import json

import pytest
from tests.unit.formats.test_stream_filter import HoldBackFilter

from sluicegate.formats.jsonstream import JsonStrings

DOCS = [
    '{"to": "my SEC\\u0052ET", "cc": ["SECRET", 1, true], "k\\"ey": "SE\\nCRET", "n": null}',
    '{"emoji": "\\ud83d\\ude00 SECRET \\ud83d\\ude00", "slash": "a\\/b", "tab": "\\tSECRETS"}',
    '["SECRE", "T", "xSECRETx"]',
    '{"deep": {"a": [{"b": "not secret at all"}]}}',
]


def run(doc: str, cuts: tuple[int, ...]) -> str:
    f = JsonStrings(HoldBackFilter())
    bounds = [0, *cuts, len(doc)]
    out = "".join(f.feed("k", doc[a:b]) for a, b in itertools.pairwise(bounds))
    return out + f.flush("k")


def expected(doc: str) -> object:
    def walk(v: object) -> object:
        if isinstance(v, str):
            return v.replace("SECRET", "[X]")
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(json.loads(doc))


@pytest.mark.parametrize("doc", DOCS)
def test_every_two_cuts_give_the_whole_result(doc: str) -> None:
    want = expected(doc)
    for i, j in itertools.combinations(range(1, len(doc)), 2):
        assert json.loads(run(doc, (i, j))) == want, (i, j)


@pytest.mark.parametrize("doc", DOCS)
def test_one_character_at_a_time(doc: str) -> None:
    assert json.loads(run(doc, tuple(range(1, len(doc))))) == expected(doc)


def test_escapes_cannot_hide_a_value() -> None:
    doc = '{"v": "\\u0053\\u0045\\u0043\\u0052\\u0045\\u0054"}'  # SECRET, fully escaped
    assert json.loads(run(doc, (9, 20))) == {"v": "[X]"}


def test_whole_matches_the_stream() -> None:
    f = JsonStrings(HoldBackFilter())
    for doc in DOCS:
        assert json.loads(f.whole(doc)) == expected(doc)
    assert f.whole("not json SECRET") == "not json [X]"
    assert f.whole('{"clean": 1}') == '{"clean": 1}'  # unchanged text is returned as it was


def test_json_punctuation_and_clean_values_pass_unchanged() -> None:
    doc = '{ "a" :  [ 1 ,2 ] }'
    assert run(doc, (3, 9)) == doc


class DigitsFilter(HoldBackFilter):
    """Also replaces a 16-digit number (a card written as a JSON number) by [CARD]."""

    def text(self, text: str) -> str:
        return "[CARD]" if text.strip().isdigit() and len(text.strip()) == 16 else super().text(text)


@pytest.mark.parametrize("doc", ['{"card": 4111111111111111, "n": 12}', "[4111111111111111 ]"])
def test_a_number_is_held_until_it_ends_and_rewritten_as_a_string(doc: str) -> None:
    for cuts in [(), *((i,) for i in range(1, len(doc)))]:
        f = JsonStrings(DigitsFilter())
        bounds = [0, *cuts, len(doc)]
        out = "".join(f.feed("k", doc[a:b]) for a, b in itertools.pairwise(bounds)) + f.flush("k")
        assert "4111" not in out and "[CARD]" in json.dumps(json.loads(out)), (cuts, out)


def test_arguments_that_are_not_json_are_still_scanned() -> None:
    doc = "call it with SECRET please"
    for i in range(1, len(doc)):
        out = run(doc, (i,))
        assert "SECRET" not in out and json.loads(out) == "call it with [X] please"
