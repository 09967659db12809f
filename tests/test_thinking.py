from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m2kit._profiles import Profile, profile_for
from m2kit._thinking import (
    Split,
    StreamSplitter,
    history_content,
    split_reply,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

M2 = profile_for("MiniMaxAI/MiniMax-M2")
PLAIN = profile_for("meta-llama/Llama-3.3-70B-Instruct")
SEED = Profile("seed", starts_in_thinking=True, open_tag="<seed:think>", close_tag="</seed:think>")
SEED_EXPLICIT = Profile("seed-explicit", open_tag="<seed:think>", close_tag="</seed:think>")
PROFILES = (M2, PLAIN, SEED, SEED_EXPLICIT)
FINISH_REASONS = (None, "stop", "length", "tool_calls", "eos_token")


@dataclass
class Streamed:
    thinking: list[str]
    answer: list[str]
    split: Split


def stream(
    profile: Profile,
    content: Sequence[str],
    reasoning: Sequence[str] = (),
    finish_reason: str | None = "stop",
) -> Streamed:
    """Reasoning pieces first, then content pieces; the last deltas are finish()'s."""
    splitter = StreamSplitter(profile)
    thinking: list[str] = []
    answer: list[str] = []
    for piece in reasoning:
        t, a = splitter.feed_reasoning(piece)
        thinking.append(t)
        answer.append(a)
    for piece in content:
        t, a = splitter.feed_content(piece)
        thinking.append(t)
        answer.append(a)
    t, a, split = splitter.finish(finish_reason)
    return Streamed([*thinking, t], [*answer, a], split)


# Whole replies, inline.


def test_m2_text_without_an_opening_tag_starts_in_thinking() -> None:
    """If MiniMax-M2's text carries only `</think>`, then what precedes it is the thinking."""
    split = split_reply("I should greet.\n</think>\n\nHello!", None, M2, "stop")
    assert split == Split("I should greet.", "Hello!", "inline")


def test_m2_leading_open_tag_is_consumed() -> None:
    """If MiniMax-M2's text starts with `<think>` after whitespace, then the tag is consumed."""
    split = split_reply("\n <think>\nplan\n</think>\n\nHi", None, M2, "stop")
    assert split == Split("plan", "Hi", "inline")


def test_answer_loses_leading_whitespace_and_keeps_trailing() -> None:
    """If the answer starts with blank lines and ends with a newline, then only the start goes."""
    split = split_reply("t</think>\n\n  Answer\n", None, M2, "stop")
    assert split.answer == "Answer\n"


@pytest.mark.parametrize("content", ["</think>\n\nHi", "<think>\n\n</think>Hi", " \n</think>Hi"])
def test_empty_thinking_is_none(content: str) -> None:
    """If the thinking between the tags is blank, then thinking is None and source "inline"."""
    assert split_reply(content, None, M2, "stop") == Split(None, "Hi", "inline")


def test_thinking_ends_at_the_first_close_tag() -> None:
    """If the close tag appears twice, then the thinking ends at the first one."""
    split = split_reply("a</think>b</think>c", None, M2, "stop")
    assert split == Split("a", "b</think>c", "inline")


@pytest.mark.parametrize("content", ["still thinking \n", "<think>still thinking \n"])
def test_truncation_while_thinking_is_flagged(content: str) -> None:
    """If the output stops at its token limit before `</think>`, then it was cut while thinking."""
    split = split_reply(content, None, M2, "length")
    assert split == Split("still thinking", "", "inline", cut_while_thinking=True)


def test_m2_never_closed_with_a_normal_stop_is_the_answer() -> None:
    """If MiniMax-M2 never writes `</think>` and stops normally, then the text is the answer."""
    split = split_reply("\n\nParis is the capital.\n", None, M2, "stop")
    assert split == Split(None, "Paris is the capital.\n", None)


@pytest.mark.parametrize("finish_reason", ["stop", "tool_calls", "eos_token"])
def test_explicit_open_tag_never_closed_stays_thinking(finish_reason: str) -> None:
    """If an explicit `<think>` is never closed and the reply stops, then it stays thinking."""
    split = split_reply("<think>pondering", None, M2, finish_reason)
    assert split == Split("pondering", "", "inline")


@pytest.mark.parametrize("profile", [M2, PLAIN])
def test_a_dropped_stream_keeps_unclosed_thinking(profile: Profile) -> None:
    """If there is no finish reason and the thinking is open, then the text is the thinking."""
    split = split_reply("<think>half a thought", None, profile, None)
    assert split == Split("half a thought", "", "inline")


def test_m2_dropped_stream_without_tags_is_thinking() -> None:
    """If MiniMax-M2's stream drops before `</think>`, then the partial text is thinking."""
    assert split_reply("half a thought", None, M2, None) == Split("half a thought", "", "inline")


def test_plain_model_mentioning_think_mid_answer_is_all_answer() -> None:
    """If a model that does not think writes the tags mid-answer, then they are answer text."""
    content = "\nUse <think> to open and </think> to close.\n"
    split = split_reply(content, None, PLAIN, "stop")
    assert split == Split(None, "Use <think> to open and </think> to close.\n", None)


def test_plain_model_opening_with_think_is_thinking() -> None:
    """If a model that does not start in thinking opens with `<think>`, then it is thinking."""
    split = split_reply("  <think>hmm</think>\n\nYes.", None, PLAIN, "stop")
    assert split == Split("hmm", "Yes.", "inline")


def test_plain_model_close_tag_alone_is_answer() -> None:
    """If a model that does not start in thinking writes only `</think>`, then it is answer."""
    assert split_reply("x</think>y", None, PLAIN, "stop") == Split(None, "x</think>y", None)


@pytest.mark.parametrize("profile", [M2, PLAIN])
@pytest.mark.parametrize("content", [None, "", " \n\t "])
def test_blank_content_with_a_normal_stop_is_an_empty_answer(
    profile: Profile, content: str | None
) -> None:
    """If the content is missing or blank and the reply stops, then everything is empty."""
    assert split_reply(content, None, profile, "stop") == Split(None, "", None)


def test_profile_tags_are_used() -> None:
    """If a profile has its own tags, then those tags split the text and `<think>` does not."""
    split = split_reply("<think>a</think>b</seed:think>\nc", None, SEED, "stop")
    assert split == Split("<think>a</think>b", "c", "inline")


# Whole replies, field.


def test_reasoning_field_is_the_thinking_and_content_is_not_parsed() -> None:
    """If the reasoning field has text, then it is the thinking and the content is the answer."""
    split = split_reply("\n\nHi <think>x</think>", "  plan \n", M2, "stop")
    assert split == Split("plan", "Hi <think>x</think>", "field")


def test_reasoning_field_with_empty_answer_at_length_is_cut() -> None:
    """If the reasoning field is full and the answer empty at the token limit, then it was cut."""
    assert split_reply(None, "plan", M2, "length") == Split("plan", "", "field", True)
    assert split_reply("\n", "plan", M2, "length").cut_while_thinking
    assert not split_reply("Hi", "plan", M2, "length").cut_while_thinking
    assert not split_reply("", "plan", M2, "stop").cut_while_thinking


@pytest.mark.parametrize("reasoning", ["", " \n "])
def test_blank_reasoning_field_falls_back_to_inline(reasoning: str) -> None:
    """If the reasoning field is blank, then the content is parsed for tags."""
    split = split_reply("plan</think>Hi", reasoning, M2, "stop")
    assert split == Split("plan", "Hi", "inline")


# History.


def test_history_keeps_inline_content_unchanged() -> None:
    """If the thinking came inline or not at all, then history gets the raw content."""
    raw = "\nplan\n</think>\n\nHi"
    assert history_content(split_reply(raw, None, M2, "stop"), raw, M2) == raw
    assert history_content(split_reply("Hi", None, PLAIN, "stop"), "Hi", PLAIN) == "Hi"


def test_history_rebuilds_field_thinking_in_native_form() -> None:
    """If the thinking came in a field, then history carries it in the profile's inline form."""
    split = split_reply("\n\nHi", "plan", M2, "stop")
    assert history_content(split, "\n\nHi", M2) == "<think>\nplan\n</think>\n\nHi"


@pytest.mark.parametrize("profile", [PLAIN, SEED])
def test_history_keeps_content_as_received_without_inline_history(profile: Profile) -> None:
    """If the template reads no tags, then history content stays as received: no tags added,
    and no reasoning field either, since Groq and Cerebras refuse one with a 400."""
    split = split_reply("\n\nHi", " plan\n", profile, "stop")

    assert history_content(split, "\n\nHi", profile) == "\n\nHi"


# Streams.


def test_splitter_keeps_what_was_fed_as_received() -> None:
    """If content and reasoning were fed in pieces, then the splitter gives them back joined, and
    split() is what split_reply makes of them."""
    splitter = StreamSplitter(M2)
    for piece in ("\n", "pl", "an \n"):
        splitter.feed_reasoning(piece)
    for piece in ("\nH", "i"):
        splitter.feed_content(piece)

    assert (splitter.content, splitter.reasoning) == ("\nHi", "\nplan \n")
    assert splitter.split(None) == split_reply("\nHi", "\nplan \n", M2, None)
    assert splitter.finish("stop")[2] == splitter.split("stop")


def test_thinking_is_shown_as_it_arrives() -> None:
    """If thinking text arrives, then it is passed on at once, not held until the tag."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("Let me") == ("Let me", "")
    assert splitter.feed_content(" think. ") == (" think.", "")
    assert splitter.feed_content("More") == (" More", "")


def test_close_tag_split_across_pieces_is_held_back() -> None:
    """If `</think>` is split across pieces, then its beginning is not shown as thinking."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("abc</th") == ("abc", "")
    assert splitter.feed_content("ink>\n\nHi") == ("", "Hi")
    assert splitter.finish("stop") == ("", "", Split("abc", "Hi", "inline"))


def test_a_false_close_tag_is_released_as_thinking() -> None:
    """If a held beginning of `</think>` turns out not to be one, then it is shown after all."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("a \n</thi") == ("a", "")
    assert splitter.feed_content("s") == (" \n</this", "")


def test_a_false_tag_start_just_before_a_real_one_is_released() -> None:
    """If a lone `<` comes right before a split `</think>`, then only the `<` is shown."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("x<</th") == ("x<", "")
    assert splitter.feed_content("ink>y") == ("", "y")


def test_partial_open_tag_at_the_start_is_held_back() -> None:
    """If the text starts with part of `<think>`, then nothing is shown until it is decided."""
    splitter = StreamSplitter(PLAIN)
    assert splitter.feed_content("\n<th") == ("", "")
    assert splitter.feed_content("ink>x") == ("x", "")

    splitter = StreamSplitter(PLAIN)
    assert splitter.feed_content("<th") == ("", "")
    assert splitter.feed_content("ese") == ("", "<these")


def test_trailing_whitespace_in_thinking_waits_for_what_follows() -> None:
    """If thinking ends in whitespace, then it is shown only once more thinking follows."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("abc\n\n") == ("abc", "")
    assert splitter.feed_content("\n") == ("", "")
    assert splitter.feed_content("</think>") == ("", "")
    assert splitter.finish("stop")[2].thinking == "abc"


def test_leading_whitespace_of_the_answer_waits_for_text() -> None:
    """If the answer starts with blank pieces, then nothing is shown until text comes."""
    splitter = StreamSplitter(M2)
    deltas = [splitter.feed_content(p) for p in ("t</think>", "\n", "\n  ", "Hi ", "\n")]
    assert deltas == [("t", ""), ("", ""), ("", ""), ("", "Hi "), ("", "\n")]


def test_m2_never_closed_with_a_normal_stop_returns_the_answer_whole() -> None:
    """If MiniMax-M2 never closes its thinking and stops, then finish returns the whole answer."""
    streamed = stream(M2, ["Paris is", " the capital", ".\n"], finish_reason="stop")
    assert "".join(streamed.thinking) == "Paris is the capital."
    assert streamed.answer == ["", "", "", "Paris is the capital.\n"]
    assert streamed.split == Split(None, "Paris is the capital.\n", None)


def test_truncated_stream_is_cut_while_thinking() -> None:
    """If a stream stops at its token limit before `</think>`, then it was cut while thinking."""
    streamed = stream(M2, ["thinking ", "on\n"], finish_reason="length")
    assert streamed.split == Split("thinking on", "", "inline", cut_while_thinking=True)
    assert "".join(streamed.thinking) == "thinking on"


def test_field_stream_shows_reasoning_and_takes_content_as_answer() -> None:
    """If reasoning arrives first, then it is the thinking and content is the untouched answer."""
    streamed = stream(M2, ["\n\n", "<think>Hi"], reasoning=["\n", "plan", " more\n"])
    assert streamed.thinking == ["", "plan", " more", "", "", ""]
    assert streamed.answer == ["", "", "", "", "<think>Hi", ""]
    assert streamed.split == Split("plan more", "<think>Hi", "field")


def test_blank_content_before_reasoning_still_gives_field_mode() -> None:
    """If only blank content precedes the reasoning, then the stream is in field mode."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("\n") == ("", "")
    assert splitter.feed_reasoning("plan") == ("plan", "")
    assert splitter.feed_content("x</think>y") == ("", "x</think>y")
    assert splitter.finish("stop")[2] == Split("plan", "x</think>y", "field")


def test_reasoning_after_inline_content_is_appended_to_the_thinking() -> None:
    """If reasoning arrives after inline content began, then it joins the thinking at finish."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("inline</think>Hi") == ("inline", "Hi")
    assert splitter.feed_reasoning("late") == ("", "")
    assert splitter.finish("stop") == ("\n\nlate", "", Split("inline\n\nlate", "Hi", "inline"))


def test_reasoning_after_part_of_an_open_tag_keeps_inline_mode() -> None:
    """If reasoning comes while part of `<think>` is held back, then the mode stays inline."""
    splitter = StreamSplitter(M2)
    assert splitter.feed_content("<th") == ("", "")
    assert splitter.feed_reasoning("plan") == ("", "")
    assert splitter.feed_content("ink>x</think>y") == ("x", "y")
    assert splitter.finish("stop") == ("\n\nplan", "", Split("x\n\nplan", "y", "inline"))


def test_reasoning_after_a_plain_answer_becomes_field_thinking() -> None:
    """If reasoning arrives after a plain answer began, then it is field thinking at finish."""
    splitter = StreamSplitter(PLAIN)
    assert splitter.feed_content("Hi") == ("", "Hi")
    assert splitter.feed_reasoning("late") == ("", "")
    assert splitter.finish("stop") == ("late", "", Split("late", "Hi", "field"))


# Properties: the stream agrees with the whole reply for any pieces.


def _alphabet(profile: Profile) -> str:
    return "".join(sorted(set(profile.open_tag + profile.close_tag + "ab \n\t")))


@st.composite
def texts(draw: st.DrawFn, profile: Profile) -> str:
    tags = (profile.open_tag, profile.close_tag)
    fragments = [tag[:end] for tag in tags for end in range(1, len(tag) + 1)]
    parts = st.one_of(st.sampled_from(fragments), st.text(_alphabet(profile), max_size=4))
    return "".join(draw(st.lists(parts, max_size=12)))


@st.composite
def pieces(draw: st.DrawFn, text: str) -> list[str]:
    if draw(st.booleans()):
        return list(text)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 3)))
    bounds = [0, *cuts, len(text)]
    return [text[start:end] for start, end in pairwise(bounds)]


def _voided(profile: Profile, split: Split, finish_reason: str | None) -> bool:
    # The one case where the thinking deltas were the answer: see StreamSplitter.
    implicit = profile.starts_in_thinking and split.source is None
    return implicit and finish_reason not in (None, "length")


def _check_deltas(profile: Profile, streamed: Streamed, finish_reason: str | None) -> None:
    split = streamed.split
    assert "".join(streamed.answer) == split.answer
    if _voided(profile, split, finish_reason):
        assert streamed.answer[-1] == split.answer
    else:
        assert "".join(streamed.thinking) == (split.thinking or "")


@settings(max_examples=500)
@given(data=st.data())
def test_inline_stream_agrees_with_the_whole_reply(data: st.DataObject) -> None:
    """If content arrives in any pieces, then the stream ends with split_reply's split and
    deltas that add up to it."""
    profile = data.draw(st.sampled_from(PROFILES))
    content = data.draw(texts(profile))
    finish_reason = data.draw(st.sampled_from(FINISH_REASONS))

    streamed = stream(profile, data.draw(pieces(content)), finish_reason=finish_reason)

    assert streamed.split == split_reply(content, None, profile, finish_reason)
    _check_deltas(profile, streamed, finish_reason)


@settings(max_examples=300)
@given(data=st.data())
def test_field_stream_agrees_with_the_whole_reply(data: st.DataObject) -> None:
    """If reasoning pieces then content pieces arrive, then the stream ends with split_reply's
    split and deltas that add up to it."""
    profile = data.draw(st.sampled_from(PROFILES))
    reasoning = data.draw(st.text("ab \n\t<>/", max_size=20))
    content = data.draw(texts(profile))
    finish_reason = data.draw(st.sampled_from(FINISH_REASONS))

    streamed = stream(
        profile,
        data.draw(pieces(content)),
        reasoning=data.draw(pieces(reasoning)),
        finish_reason=finish_reason,
    )

    assert streamed.split == split_reply(content, reasoning, profile, finish_reason)
    _check_deltas(profile, streamed, finish_reason)
