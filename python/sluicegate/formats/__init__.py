"""What sluicegate knows of each wire format: where the model and usage live, how errors look,
and how stream events are read. One module per format, behind `base.WireFormat`."""

from sluicegate.formats.anthropic_messages import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES
from sluicegate.formats.base import Family, Usage, WireFormat
from sluicegate.formats.openai_chat import OPENAI_CHAT
from sluicegate.formats.openai_embeddings import OPENAI_EMBEDDINGS
from sluicegate.formats.openai_responses import OPENAI_RESPONSES

FORMATS_BY_PATH: dict[str, WireFormat] = {
    f.path: f for f in (OPENAI_CHAT, OPENAI_RESPONSES, OPENAI_EMBEDDINGS, ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS)
}

__all__ = [
    "ANTHROPIC_COUNT_TOKENS",
    "ANTHROPIC_MESSAGES",
    "FORMATS_BY_PATH",
    "OPENAI_CHAT",
    "OPENAI_EMBEDDINGS",
    "OPENAI_RESPONSES",
    "Family",
    "Usage",
    "WireFormat",
]
