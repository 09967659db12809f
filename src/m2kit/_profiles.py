"""Model profiles: how each model family writes its thinking."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


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
        # MiniMax-M2's chat template writes earlier turns exactly this way.
        thinking = thinking.strip("\n")
        return f"{self.open_tag}\n{thinking}\n{self.close_tag}\n\n{answer}"


_DEFAULT = Profile("default")

# Glob patterns over the lower-cased model name (no organisation, no routing suffix); the first
# match wins. Each family listed has a chat template that ends the prompt with `<think>`.
_PROFILES: tuple[tuple[str, Profile], ...] = (
    ("minimax-m2*", Profile("minimax-m2", starts_in_thinking=True)),
    ("qwen3-*-thinking-2507*", Profile("qwen3-thinking", starts_in_thinking=True)),
    # The preview wrote its reasoning as plain text, with no tags at all.
    ("qwq-32b-preview*", _DEFAULT),
    ("qwq-*", Profile("qwq", starts_in_thinking=True)),
    ("deepseek-r1*", Profile("deepseek-r1", starts_in_thinking=True)),
)


def profile_for(model: str) -> Profile:
    """The profile for a model id (any routing suffix and organisation are ignored)."""
    name = model.split(":", 1)[0].rsplit("/", 1)[-1].lower()
    for pattern, profile in _PROFILES:
        if fnmatchcase(name, pattern):
            return profile
    return _DEFAULT
