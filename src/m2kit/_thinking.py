"""Splitting thinking from the answer, for whole replies and for streams fed in any pieces.

Inline thinking (tags inside `content`):

- A profile that starts in thinking puts the text inside the thinking from the first character;
  a `<think>` at the start (after whitespace) is consumed as well. Any other profile reads the
  text as the answer, unless it opens with `<think>` (after whitespace). Tags further into a plain
  answer are answer text.
- The thinking ends at the first close tag; the thinking is stripped, the answer loses its
  leading whitespace.
- With no close tag, a reply cut at its token limit ("length") or a stream that dropped (no
  finish reason) keeps everything as thinking. A normal stop (any other reason) means a profile's
  implicit thinking was the answer all along; an explicit `<think>` stays thinking.

Field thinking (`reasoning_content`, `reasoning`, `reasoning_details`): the reasoning is the
thinking and `content` the answer, never searched for tags.

History: inline thinking stays in `content` as received. Field thinking goes back rebuilt inline
for a profile whose template reads it there (`Profile.inline_history`); for any other profile,
`content` stays as received and the reasoning goes back in a field of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
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
    content = content or ""
    if reasoning and not reasoning.isspace():
        answer = content.lstrip()
        cut = finish_reason == "length" and not answer
        return Split(reasoning.strip(), answer, "field", cut)
    return _split_inline(content, profile, finish_reason)


def _split_inline(content: str, profile: Profile, finish_reason: str | None) -> Split:
    text = content.lstrip()
    explicit = text.startswith(profile.open_tag)
    if not explicit and not profile.starts_in_thinking:
        return Split(None, text, None)

    body = text[len(profile.open_tag) :] if explicit else text
    end = body.find(profile.close_tag)
    if end >= 0:
        answer = body[end + len(profile.close_tag) :].lstrip()
        return Split(_stripped(body[:end]), answer, "inline")

    if finish_reason in (None, "length") or explicit:
        return Split(_stripped(body), "", "inline", finish_reason == "length")

    # The template opened the thinking, yet the model stopped without closing it: it answered
    # straight away, so the whole text is the answer.
    return Split(None, text, None)


def _stripped(text: str) -> str | None:
    return text.strip() or None


def history_content(split: Split, raw_content: str, profile: Profile) -> str:
    """The content to send back in history: rebuilt in the profile's native form when the
    thinking came in a field and `profile.inline_history` is set, else `raw_content` untouched."""
    if split.source == "field" and split.thinking and profile.inline_history:
        return profile.render_history(split.thinking, split.answer)
    return raw_content


class StreamSplitter:
    """Incremental twin of `split_reply`: the same result for any split of the input into pieces.

    Each feed returns `(thinking_delta, answer_delta)`; either may be empty. Thinking is passed
    on as it arrives; held back are only what the next piece may still change: a partial open
    tag at the start, a partial close tag, trailing whitespace inside the thinking and leading
    whitespace of the answer. The deltas add up to the final split, except when a profile's
    implicit thinking never closes and the reply stops normally: the thinking streamed was the
    answer, which `finish` then returns whole as its answer delta.

    The mode is set by the first non-blank input. Reasoning first: field mode, and `content` is
    the answer. Content first: inline mode; reasoning that still arrives afterwards (never seen
    from a real server) is appended to the thinking at `finish`.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._mode: Literal["start", "thinking", "answer", "field"] = "start"
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._tag = ""  # a partial open tag ("start") or close tag ("thinking") held back
        self._space: list[str] = []  # trailing whitespace of the thinking shown so far
        self._thinking: list[str] = []
        self._answer: list[str] = []

    def feed_content(self, text: str) -> tuple[str, str]:
        self._content.append(text)
        if self._mode == "start":
            return self._start(text)
        if self._mode == "thinking":
            return self._think(text)
        return "", self._show_answer(text)

    def feed_reasoning(self, text: str) -> tuple[str, str]:
        self._reasoning.append(text)
        if self._mode == "start" and not self._tag and text and not text.isspace():
            self._mode = "field"
        if self._mode != "field":
            return "", ""
        return self._show_thinking(text), ""

    @property
    def content(self) -> str:
        """All content fed so far, exactly as received."""
        return "".join(self._content)

    @property
    def reasoning(self) -> str:
        """All reasoning-field text fed so far, exactly as received."""
        return "".join(self._reasoning)

    def split(self, finish_reason: str | None) -> Split:
        """The split of everything fed so far, ending with `finish_reason`; no deltas."""
        # Splitting the whole text again makes the stream agree with split_reply by construction;
        # the deltas only have to catch up with it.
        if self._mode == "field":
            return split_reply(self.content, self.reasoning, self.profile, finish_reason)
        inline = split_reply(self.content, None, self.profile, finish_reason)
        return _with_late_reasoning(inline, self.reasoning)

    def finish(self, finish_reason: str | None) -> tuple[str, str, Split]:
        """Flush held-back text and return the last deltas and the final split."""
        split = self.split(finish_reason)
        thinking = _remainder(split.thinking or "", "".join(self._thinking))
        answer = _remainder(split.answer, "".join(self._answer))
        return thinking, answer, split

    def _start(self, text: str) -> tuple[str, str]:
        if not self._tag:
            text = text.lstrip()
            if not text:
                return "", ""

        seen = self._tag + text
        open_tag = self.profile.open_tag
        if seen.startswith(open_tag):
            self._tag = ""
            self._mode = "thinking"
            return self._think(seen[len(open_tag) :])
        if open_tag.startswith(seen):
            self._tag = seen
            return "", ""

        self._tag = ""
        if self.profile.starts_in_thinking:
            self._mode = "thinking"
            return self._think(seen)
        self._mode = "answer"
        return "", self._show_answer(seen)

    def _think(self, text: str) -> tuple[str, str]:
        close_tag = self.profile.close_tag
        seen = self._tag + text
        end = seen.find(close_tag)
        if end >= 0:
            self._tag = ""
            self._mode = "answer"
            thinking = self._show_thinking(seen[:end], closing=True)
            return thinking, self._show_answer(seen[end + len(close_tag) :])

        keep = _partial_tag(seen, close_tag)
        self._tag = seen[len(seen) - keep :]
        return self._show_thinking(seen[: len(seen) - keep]), ""

    def _show_thinking(self, text: str, *, closing: bool = False) -> str:
        if not self._thinking:
            text = text.lstrip()
        shown = text.rstrip()
        if not shown:
            if closing:
                self._space.clear()
            else:
                self._space.append(text)
            return ""

        delta = "".join(self._space) + shown
        self._space = [] if closing else [text[len(shown) :]]
        self._thinking.append(delta)
        return delta

    def _show_answer(self, text: str) -> str:
        if not self._answer:
            text = text.lstrip()
        if text:
            self._answer.append(text)
        return text


def _partial_tag(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a proper beginning of `tag`."""
    at = text.find(tag[:1], max(0, len(text) - len(tag) + 1))
    while at >= 0:
        if tag.startswith(text[at:]):
            return len(text) - at
        at = text.find(tag[:1], at + 1)
    return 0


def _remainder(final: str, sent: str) -> str:
    # What was sent is normally a beginning of the final text. When it is not, it was thinking
    # that turned out to be the answer, and the final text is due whole.
    return final[len(sent) :] if final.startswith(sent) else final


def _with_late_reasoning(split: Split, reasoning: str) -> Split:
    # After a plain answer the field was the only thinking: "field" makes history keep it. After
    # inline thinking, history stays the raw content and this late text is not in it.
    late = reasoning.strip()
    if not late:
        return split
    thinking = f"{split.thinking}\n\n{late}" if split.thinking else late
    return replace(split, thinking=thinking, source=split.source or "field")
