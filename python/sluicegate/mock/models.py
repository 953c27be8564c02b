"""The models the mock lists (`GET /v1/models`, `GET /v1/models/{id}`), in either format.

A request with an `anthropic-version` header gets Anthropic's shapes, any other OpenAI's.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MODELS", "anthropic_model", "model_list", "openai_model"]

MODELS: Final = ("mock-gpt", "mock-gpt-mini", "mock-claude", "mock-embed")
_CREATED: Final = 1_767_225_600  # 2026-01-01T00:00:00Z
_CREATED_AT: Final = "2026-01-01T00:00:00Z"


def openai_model(model_id: str) -> dict[str, Any]:
    """One OpenAI model object."""
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "sluicegate"}


def anthropic_model(model_id: str) -> dict[str, Any]:
    """One Anthropic model object."""
    name = " ".join(word.capitalize() for word in model_id.split("-"))
    return {"type": "model", "id": model_id, "display_name": name, "created_at": _CREATED_AT, "lifecycle": "active"}


def model_list(anthropic: bool) -> dict[str, Any]:
    """The list of every mock model in the asked format."""
    if anthropic:
        data = [anthropic_model(m) for m in MODELS]
        return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    return {"object": "list", "data": [openai_model(m) for m in MODELS]}
