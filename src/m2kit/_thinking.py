"""Splitting thinking from the answer, for whole replies and for streams fed in any pieces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._profiles import Profile


@dataclass(frozen=True, slots=True)
class Split:
    """Thinking and answer of one reply.

    `source` is "inline" (tags inside content), "field" (a separate reasoning field) or None (no
    thinking). `cut_while_thinking` is True when the output stopped at its token limit before the
    thinking closed; `answer` is then empty.
    """

    thinking: str | None
    answer: str
    source: Literal["inline", "field"] | None
    cut_while_thinking: bool = False


def split_reply(
    content: str | None, reasoning: str | None, profile: Profile, finish_reason: str | None
) -> Split:
    """Split a whole reply: `content` as received, `reasoning` from a separate field or None."""
    raise NotImplementedError


def history_content(split: Split, raw_content: str, profile: Profile) -> str:
    """The content to send back in history: `raw_content` untouched when the thinking came
    inline (or there was none), rebuilt in the profile's native form when it came in a field."""
    raise NotImplementedError


class StreamSplitter:
    """Incremental twin of `split_reply`: the same result for any split of the input into pieces.

    Each feed returns `(thinking_delta, answer_delta)`; either may be empty.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def feed_content(self, text: str) -> tuple[str, str]:
        raise NotImplementedError

    def feed_reasoning(self, text: str) -> tuple[str, str]:
        raise NotImplementedError

    def finish(self, finish_reason: str | None) -> tuple[str, str, Split]:
        """Flush held-back text and return the last deltas and the final split."""
        raise NotImplementedError
