"""Model profiles: how each model family writes its thinking."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """How a model family marks its thinking.

    `starts_in_thinking`: the chat template opens the thinking block itself, so generated text
    starts inside it and usually carries only the closing tag.
    """

    name: str
    starts_in_thinking: bool = False
    open_tag: str = "<think>"
    close_tag: str = "</think>"

    def render_history(self, thinking: str, answer: str) -> str:
        """The assistant content in the model's native inline form, thinking first."""
        raise NotImplementedError


def profile_for(model: str) -> Profile:
    """The profile for a model id (any routing suffix and organisation are ignored)."""
    raise NotImplementedError
