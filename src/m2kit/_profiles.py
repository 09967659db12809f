"""Model profiles: how each model family writes its thinking, and how history carries it back."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ._errors import ConfigError


@dataclass(frozen=True, slots=True)
class Profile:
    """How a model family marks its thinking.

    `starts_in_thinking`: the chat template opens the thinking block itself, so generated text
    starts inside it and usually carries only the closing tag.

    `inline_history`: the chat template reads earlier thinking from tags inside `content`, so
    thinking that arrived in a separate field goes back rebuilt inline (`render_history`). When
    False, it goes back in the field it came in, and `content` stays as received.
    """

    name: str
    starts_in_thinking: bool = False
    open_tag: str = "<think>"
    close_tag: str = "</think>"
    inline_history: bool = False

    def render_history(self, thinking: str, answer: str) -> str:
        """The assistant content in the model's native inline form, thinking first."""
        # MiniMax-M2's chat template writes earlier turns exactly this way.
        thinking = thinking.strip("\n")
        return f"{self.open_tag}\n{thinking}\n{self.close_tag}\n\n{answer}"


_DEFAULT = Profile("default")

# Glob patterns over the lower-cased model name (no organisation, no routing suffix); the first
# match wins. Each family listed has a chat template that ends the prompt with `<think>`, and
# takes earlier thinking from the tags in `content`.
_PROFILES: tuple[tuple[str, Profile], ...] = (
    ("minimax-m2*", Profile("minimax-m2", starts_in_thinking=True, inline_history=True)),
    (
        "qwen3-*-thinking-2507*",
        Profile("qwen3-thinking", starts_in_thinking=True, inline_history=True),
    ),
    # The preview wrote its reasoning as plain text, with no tags at all.
    ("qwq-32b-preview*", _DEFAULT),
    ("qwq-*", Profile("qwq", starts_in_thinking=True, inline_history=True)),
    ("deepseek-r1*", Profile("deepseek-r1", starts_in_thinking=True, inline_history=True)),
)

_BY_NAME: dict[str, Profile] = {
    **{profile.name: profile for _, profile in _PROFILES if profile is not _DEFAULT},
    _DEFAULT.name: _DEFAULT,
}

#: The names `profile_named` accepts: the table's families in order, then "default".
PROFILE_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def profile_for(model: str) -> Profile:
    """The profile for a model id (any routing suffix and organisation are ignored)."""
    name = model.split(":", 1)[0].rsplit("/", 1)[-1].lower()
    for pattern, profile in _PROFILES:
        if fnmatchcase(name, pattern):
            return profile
    return _DEFAULT


def profile_named(name: str) -> Profile:
    """The profile called `name`, one of `PROFILE_NAMES` (case is ignored).

    For servers whose served model name hides the family, e.g. vLLM `--served-model-name m2`.
    An unknown name raises ConfigError listing the names.
    """
    profile = _BY_NAME.get(name.strip().lower())
    if profile is None:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}",
            hint="Name the family of the model the server runs, e.g. minimax-m2.",
        )
    return profile
