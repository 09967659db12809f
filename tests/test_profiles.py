from __future__ import annotations

import pytest

from m2kit import ConfigError
from m2kit._profiles import _PROFILES, PROFILE_NAMES, Profile, profile_for, profile_named

# One model id per row of the table; a row added without an example here fails the last test.
ROW_EXAMPLES = {
    "minimax-m2*": "MiniMaxAI/MiniMax-M2",
    "qwen3-*-thinking-2507*": "Qwen/Qwen3-235B-A22B-Thinking-2507",
    "qwq-32b-preview*": "Qwen/QwQ-32B-Preview",
    "qwq-*": "Qwen/QwQ-32B",
    "deepseek-r1*": "deepseek-ai/DeepSeek-R1",
}


@pytest.mark.parametrize(
    "model",
    [
        "MiniMaxAI/MiniMax-M2",
        "MiniMaxAI/MiniMax-M2.1",
        "MiniMaxAI/MiniMax-M2.5:novita",
        "minimax-m2",
        "MINIMAXAI/MINIMAX-M2:FASTEST",
    ],
)
def test_minimax_m2_family_starts_in_thinking(model: str) -> None:
    """If the model is any MiniMax-M2 release, then its text starts inside the thinking."""
    profile = profile_for(model)
    assert profile.name == "minimax-m2"
    assert profile.starts_in_thinking
    assert (profile.open_tag, profile.close_tag) == ("<think>", "</think>")


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("Qwen/Qwen3-235B-A22B-Thinking-2507", "qwen3-thinking"),
        ("Qwen/Qwen3-30B-A3B-Thinking-2507-FP8:nebius", "qwen3-thinking"),
        ("Qwen3-4B-Thinking-2507", "qwen3-thinking"),
        ("Qwen/QwQ-32B", "qwq"),
        ("Qwen/QwQ-32B:cheapest", "qwq"),
        ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
        ("deepseek-ai/DeepSeek-R1-0528:together", "deepseek-r1"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "deepseek-r1"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B:groq", "deepseek-r1"),
        ("deepseek-ai/DeepSeek-R1-0528-Qwen3-8B", "deepseek-r1"),
    ],
)
def test_templates_that_force_think_open_start_in_thinking(model: str, name: str) -> None:
    """If the model's template opens `<think>` itself, then its profile starts in thinking."""
    profile = profile_for(model)
    assert profile.name == name
    assert profile.starts_in_thinking


@pytest.mark.parametrize(
    "model",
    [
        "Qwen/QwQ-32B-Preview",
        "Qwen/Qwen3-235B-A22B-Instruct-2507",
        "Qwen/Qwen3-8B",
        "deepseek-ai/DeepSeek-V3.1",
        "meta-llama/Llama-3.3-70B-Instruct:cerebras",
        "openai/gpt-oss-120b",
        "MiniMaxAI/MiniMax-M1-80k",
        "",
    ],
)
def test_other_models_get_the_default_profile(model: str) -> None:
    """If the model is not in the table, then its profile does not start in thinking."""
    profile = profile_for(model)
    assert profile.name == "default"
    assert not profile.starts_in_thinking


def test_every_row_of_the_table_is_reached() -> None:
    """If a row is in the table, then its example model id gets that row's profile."""
    assert [pattern for pattern, _ in _PROFILES] == list(ROW_EXAMPLES)
    for pattern, profile in _PROFILES:
        assert profile_for(ROW_EXAMPLES[pattern]) == profile


def test_render_history_uses_the_native_form() -> None:
    """If thinking and answer are rendered, then they take MiniMax-M2's template form."""
    profile = profile_for("MiniMaxAI/MiniMax-M2")
    rendered = profile.render_history("Plan the reply.", "Hello!")
    assert rendered == "<think>\nPlan the reply.\n</think>\n\nHello!"


def test_render_history_strips_only_newlines_around_the_thinking() -> None:
    """If the thinking has newlines and spaces around it, then only the newlines are removed."""
    rendered = Profile("default").render_history("\n\n  plan \n", "Hi\n")
    assert rendered == "<think>\n  plan \n</think>\n\nHi\n"


def test_render_history_uses_the_profile_tags() -> None:
    """If a profile has its own tags, then the rendered history uses them."""
    profile = Profile("seed", open_tag="<seed:think>", close_tag="</seed:think>")
    assert profile.render_history("x", "y") == "<seed:think>\nx\n</seed:think>\n\ny"


@pytest.mark.parametrize("model", ROW_EXAMPLES.values())
def test_tag_template_families_take_history_inline(model: str) -> None:
    """If a family in the table reads thinking from tags, then its history is rebuilt inline;
    the default profile's is not."""
    profile = profile_for(model)
    assert profile.inline_history == (profile.name != "default")
    assert not profile_for("openai/gpt-oss-120b").inline_history


def test_profile_names_are_the_table_names_then_default() -> None:
    """If the table names its families, then PROFILE_NAMES lists each once, "default" last."""
    assert PROFILE_NAMES == ("minimax-m2", "qwen3-thinking", "qwq", "deepseek-r1", "default")


@pytest.mark.parametrize("model", ROW_EXAMPLES.values())
def test_every_profile_is_found_by_its_name(model: str) -> None:
    """If a profile's name is given, case aside, then profile_named returns that profile."""
    profile = profile_for(model)
    assert profile_named(profile.name) is profile
    assert profile_named(f" {profile.name.upper()} ") is profile


@pytest.mark.parametrize("name", ["minimax", "", "MiniMaxAI/MiniMax-M2"])
def test_an_unknown_profile_name_lists_the_names(name: str) -> None:
    """If an unknown profile name is given, then ConfigError lists every name."""
    with pytest.raises(ConfigError) as caught:
        profile_named(name)

    assert all(known in caught.value.message for known in PROFILE_NAMES)
    assert caught.value.hint
