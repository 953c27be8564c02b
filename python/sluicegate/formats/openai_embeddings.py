"""OpenAI embeddings (`POST /v1/embeddings`): never streamed; usage has prompt tokens only."""

from __future__ import annotations

from typing import Any

from sluicegate.formats.base import Usage, WireFormat, count


class OpenAIEmbeddings(WireFormat):
    name = "openai_embeddings"
    path = "/v1/embeddings"
    family = "openai"
    streams = False

    def usage(self, body: Any) -> Usage | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        return Usage(input_tokens=count(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None


OPENAI_EMBEDDINGS = OpenAIEmbeddings()
