from __future__ import annotations

import pytest

from m2kit._errors import ConfigError
from m2kit._routing import _PROVIDERS, POLICIES, ModelRef, parse_model


def test_a_pinned_provider_is_split_off() -> None:
    """If the id ends with `:novita`, then the repo and the provider are split apart."""
    ref = parse_model("MiniMaxAI/MiniMax-M2:novita")
    assert ref == ModelRef("MiniMaxAI/MiniMax-M2", "novita")
    assert ref.provider == "novita"
    assert ref.policy is None


def test_no_suffix_means_fastest() -> None:
    """If the id has no suffix, then the policy is "fastest" and no provider is pinned."""
    ref = parse_model("MiniMaxAI/MiniMax-M2")
    assert ref == ModelRef("MiniMaxAI/MiniMax-M2")
    assert ref.policy == "fastest"
    assert ref.provider is None


@pytest.mark.parametrize("policy", POLICIES)
def test_a_policy_suffix_is_the_policy(policy: str) -> None:
    """If the suffix is a routing policy, then it is the policy and no provider is pinned."""
    ref = parse_model(f"Qwen/QwQ-32B:{policy}")
    assert ref.policy == policy
    assert ref.provider is None


@pytest.mark.parametrize("provider", _PROVIDERS)
def test_every_known_provider_is_accepted(provider: str) -> None:
    """If the suffix names a known provider, then it is pinned."""
    assert parse_model(f"org/model:{provider}").provider == provider


@pytest.mark.parametrize("provider", ["acme-inference", "replicate", "openai", "zai", "fal-ai"])
def test_a_well_formed_unknown_provider_is_accepted(provider: str) -> None:
    """If the suffix is well formed and not close to a known name, then it is pinned as is."""
    assert parse_model(f"org/model:{provider}").provider == provider


def test_str_gives_back_the_model_id() -> None:
    """If a parsed id is turned back into text, then it is the id given."""
    for model in ("MiniMaxAI/MiniMax-M2", "MiniMaxAI/MiniMax-M2:cheapest", "a.b/c_d-1.5:novita"):
        assert str(parse_model(model)) == model


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ("MiniMaxAI/MiniMax-M2:", "empty routing suffix"),
        ("MiniMaxAI/MiniMax-M2:no vita", "only a-z, 0-9 and '-'"),
        ("MiniMaxAI/MiniMax-M2:fire_works", "only a-z, 0-9 and '-'"),
        ("MiniMaxAI/MiniMax-M2:novita:fastest", "more than one ':'"),
        ("MiniMax-M2", "not of the form org/name"),
        ("MiniMax-M2:novita", "not of the form org/name"),
        ("a/b/c", "not of the form org/name"),
        ("/MiniMax-M2", "not of the form org/name"),
        ("MiniMaxAI/", "not of the form org/name"),
        ("MiniMaxAI/MiniMax M2", "not of the form org/name"),
        ("", "not of the form org/name"),
    ],
)
def test_malformed_ids_are_refused_with_the_choices(model: str, problem: str) -> None:
    """If the id is malformed, then ConfigError says what is wrong and how to write it."""
    with pytest.raises(ConfigError) as caught:
        parse_model(model)
    assert problem in str(caught.value)
    if "org/name" in problem or "':'" in problem:
        assert "org/name" in caught.value.hint
        return
    for choice in (*POLICIES, *_PROVIDERS):
        assert f":{choice}" in caught.value.hint


@pytest.mark.parametrize(
    ("suffix", "meant"),
    [
        ("fastets", "fastest"),
        ("cheapset", "cheapest"),
        ("prefered", "preferred"),
        ("cheap", "cheapest"),
        ("novitaa", "novita"),
        ("fireworks", "fireworks-ai"),
        ("together-ai", "together"),
        ("hfinference", "hf-inference"),
    ],
)
def test_a_near_miss_suggests_the_name_meant(suffix: str, meant: str) -> None:
    """If the suffix is a near miss of a policy or provider, then the error suggests it."""
    with pytest.raises(ConfigError, match=f"did you mean :{meant}\\?"):
        parse_model(f"MiniMaxAI/MiniMax-M2:{suffix}")


@pytest.mark.parametrize(("suffix", "meant"), [("Novita", "novita"), ("FASTEST", "fastest")])
def test_a_suffix_in_capitals_suggests_the_lower_case_name(suffix: str, meant: str) -> None:
    """If the suffix has capitals, then it is refused and the lower-case name is suggested."""
    with pytest.raises(ConfigError, match=f"did you mean :{meant}\\?"):
        parse_model(f"MiniMaxAI/MiniMax-M2:{suffix}")
