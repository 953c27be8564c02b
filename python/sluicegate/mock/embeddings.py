"""OpenAI embeddings (`POST /v1/embeddings`) as the mock answers them.

Each input gets a deterministic vector: byte i of SHAKE-256(input) gives component
`(b - 128) / 128`, a multiple of 1/128 in [-1, 1), exact in float32, so the `float` and
`base64` (little-endian float32) encodings decode to the same numbers. String inputs are keyed
by their UTF-8 bytes, token arrays by their compact JSON. Usage counts strings with `tokens()`
and token arrays by their length.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any, Final

import orjson

from sluicegate.mock.errors import MockError
from sluicegate.mock.reply import tokens

__all__ = ["DEFAULT_DIMENSIONS", "embeddings", "vector"]

DEFAULT_DIMENSIONS: Final = 8
_MAX_DIMENSIONS: Final = 16_384


def vector(key: bytes, dimensions: int) -> list[float]:
    """The mock embedding of `key`."""
    return [(b - 128) / 128 for b in hashlib.shake_256(key).digest(dimensions)]


def _inputs(value: Any) -> list[tuple[bytes, int]]:
    """(hash key, token count) per input: a string, a token array, or a list of either."""
    if isinstance(value, str):
        return [(value.encode(), tokens(value))]
    if isinstance(value, list) and value:
        if all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            return [(orjson.dumps(value), len(value))]
        out: list[tuple[bytes, int]] = []
        for item in value:
            if isinstance(item, str):
                out.append((item.encode(), tokens(item)))
            elif isinstance(item, list) and item and all(isinstance(x, int) and not isinstance(x, bool) for x in item):
                out.append((orjson.dumps(item), len(item)))
            else:
                break
        else:
            return out
    raise MockError(
        400, "invalid_request", "'input' must be a non-empty string, list of strings or token arrays", param="input"
    )


def embeddings(req: dict[str, Any], model: str) -> bytes:
    """The body of an embeddings answer for the request `req`, reporting `model`."""
    dimensions = req.get("dimensions", DEFAULT_DIMENSIONS)
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= _MAX_DIMENSIONS:
        raise MockError(400, "invalid_request", f"'dimensions' must be 1..{_MAX_DIMENSIONS}", param="dimensions")
    encoding = req.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise MockError(
            400, "invalid_request", "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    inputs = _inputs(req.get("input"))
    data = []
    for index, (key, _) in enumerate(inputs):
        values = vector(key, dimensions)
        embedding: Any = values
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    used = max(1, sum(count for _, count in inputs))
    usage = {"prompt_tokens": used, "total_tokens": used}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
