"""OpenAI embeddings (`POST /v1/embeddings`): never streamed; usage has prompt tokens only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sluicegate.formats.base import Usage, WireFormat, count
from sluicegate.formats.slots import TextSlot, string_at


class OpenAIEmbeddings(WireFormat):
    name = "openai_embeddings"
    path = "/v1/embeddings"
    family = "openai"
    streams = False

    def request_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        if isinstance(body.get("input"), str):
            yield from string_at(body, "input", "input")
        elif isinstance(body.get("input"), list):
            for i in range(len(body["input"])):
                yield from string_at(body["input"], i, f"input[{i}]")

    def usage(self, body: Any) -> Usage | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        return Usage(input_tokens=count(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None


OPENAI_EMBEDDINGS = OpenAIEmbeddings()
