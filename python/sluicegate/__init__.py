"""sluicegate: an LLM gateway that stops spend and leaks at the request layer."""

from sluicegate._core import __version__

__all__ = ["__version__"]
