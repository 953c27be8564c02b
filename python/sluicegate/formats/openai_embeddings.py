"""OpenAI embeddings (`POST /v1/embeddings`): never streamed; usage has prompt tokens only."""

from __future__ import annotations

from typing import Any

from sluicegate.formats.base import Usage, WireFormat, count
from sluicegate.formats.slots import Shape

# Every string is text (the input, `user`, unknown fields) but the model name and the encoding.
REQUEST = Shape({"model", "encoding_format"})


class OpenAIEmbeddings(WireFormat):
    name = "openai_embeddings"
    path = "/v1/embeddings"
    family = "openai"
    streams = False

    request_shape = REQUEST

    def usage(self, body: Any) -> Usage | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        return Usage(input_tokens=count(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None


OPENAI_EMBEDDINGS = OpenAIEmbeddings()
