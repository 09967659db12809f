"""Tests for m2kit._spend: prices, costs, totals and the credit warning, from plain data."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from m2kit._catalog import parse_catalog
from m2kit._spend import (
    Cost,
    Price,
    Pricing,
    Totals,
    base_model,
    by_day,
    by_model,
    by_provider,
    catalog_prices,
    check_credits,
    cost,
    day_of,
    month_start,
    served_by,
    total,
)
from m2kit._store_rows import UsageRow

MODEL = "MiniMaxAI/MiniMax-M2"
UTC = timezone.utc
NOON = datetime(2025, 3, 15, 12, 0, tzinfo=UTC).timestamp()
PRICING = Pricing(
    {(MODEL, "novita"): Price(0.3, 1.2), (MODEL, "fireworks-ai"): Price(0.5, None)},
    {"together": {"input": 1.0, "output": 2.0}},
)


def row(**fields: Any) -> UsageRow:
    values: dict[str, Any] = {
        "created_at": NOON,
        "conversation_id": "c1",
        "model": MODEL,
        "provider": "novita",
        "prompt_tokens": 100_000,
        "completion_tokens": 50_000,
        "reasoning_tokens": 10_000,
        "total_tokens": 150_000,
        "latency": 2.0,
        "first_token": 0.5,
        "outcome": "complete",
        "retries": 0,
    }
    return UsageRow(**(values | fields))


def priced(usd: float | None, **fields: Any) -> Cost:
    values: dict[str, Any] = {
        "created_at": NOON,
        "model": MODEL,
        "provider": "novita",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "total_tokens": 30,
    }
    return Cost(**(values | fields), usd=usd)


@pytest.mark.parametrize(
    ("model", "expected"),
    [(f"{MODEL}:fastest", MODEL), (f"{MODEL}:novita", MODEL), (MODEL, MODEL), ("local", "local")],
)
def test_base_model_drops_the_routing_suffix(model: str, expected: str) -> None:
    """If a model id carries a routing suffix, then its base model is the id without it."""
    assert base_model(model) == expected


def test_served_by_prefers_the_provider_the_server_named() -> None:
    """If the server named a provider, then that is who served, whatever the suffix says."""
    assert served_by(f"{MODEL}:cheapest", "novita") == "novita"
    assert served_by(f"{MODEL}:together", "novita") == "novita"


def test_served_by_falls_back_to_a_pinned_provider_only() -> None:
    """If no provider was named, then a pinned suffix tells who served; a policy does not."""
    assert served_by(f"{MODEL}:together", None) == "together"
    assert served_by(f"{MODEL}:fastest", None) is None
    assert served_by(MODEL, None) is None
    assert served_by(None, None) is None


def test_catalog_prices_reads_every_offer() -> None:
    """If the catalogue lists providers with pricing, then each (model, provider) gets its price."""
    models = parse_catalog(
        {
            "data": [
                {
                    "id": MODEL,
                    "providers": [
                        {"provider": "novita", "pricing": {"input": 0.3, "output": 1.2}},
                        {"provider": "fireworks-ai"},
                    ],
                }
            ]
        }
    )

    assert catalog_prices(models) == {
        (MODEL, "novita"): Price(0.3, 1.2),
        (MODEL, "fireworks-ai"): Price(None, None),
    }


def test_config_prices_win_over_the_catalogue_field_by_field() -> None:
    """If the config sets one price of a provider, then it wins and the other comes from the
    catalogue."""
    pricing = Pricing({(MODEL, "novita"): Price(0.3, 1.2)}, {"Novita": {"output": 2.5}})

    assert pricing.price(MODEL, "novita") == Price(0.3, 2.5)


def test_prices_match_ignoring_case() -> None:
    """If the model or provider differs in case from the catalogue, then the price still applies."""
    assert PRICING.price("minimaxai/minimax-m2", "NOVITA") == Price(0.3, 1.2)


def test_config_prices_apply_to_any_model_of_the_provider() -> None:
    """If the config prices a provider, then every model it serves gets that price."""
    assert PRICING.price("some/other-model", "together") == Price(1.0, 2.0)


def test_an_unknown_provider_has_no_price() -> None:
    """If nothing says who served a call, then it has no price."""
    assert PRICING.price(MODEL, None) == Price()
    assert PRICING.price(MODEL, "nebius") == Price()


def test_cost_multiplies_tokens_by_prices_per_million() -> None:
    """If a call used 100k prompt and 50k completion tokens at $0.3/$1.2, then it cost $0.09."""
    found = cost(row(), PRICING)

    assert found.usd == pytest.approx(0.09)
    assert (found.prompt_tokens, found.completion_tokens, found.total_tokens) == (
        100_000,
        50_000,
        150_000,
    )


def test_cost_looks_prices_up_without_the_suffix() -> None:
    """If the call asked for model:fastest, then it is priced (and grouped) as the bare model."""
    found = cost(row(model=f"{MODEL}:fastest"), PRICING)

    assert found.model == MODEL
    assert found.usd == pytest.approx(0.09)


def test_cost_uses_the_pinned_provider_when_none_was_named() -> None:
    """If the server named no provider but the model pinned one, then that provider's price
    applies."""
    found = cost(row(model=f"{MODEL}:together", provider=None), PRICING)

    assert found.provider == "together"
    assert found.usd == pytest.approx(0.1 * 1.0 + 0.05 * 2.0)


def test_a_missing_price_leaves_the_call_unpriced() -> None:
    """If the provider has no output price, then a call with completion tokens is unpriced."""
    assert cost(row(provider="fireworks-ai"), PRICING).usd is None


def test_a_missing_price_for_unused_tokens_does_not_matter() -> None:
    """If a price is missing only for a kind of token the call did not use, then it is priced."""
    found = cost(row(provider="fireworks-ai", completion_tokens=0, total_tokens=None), PRICING)

    assert found.usd == pytest.approx(0.05)
    assert found.total_tokens == 100_000


def test_a_failed_call_without_counts_costs_nothing() -> None:
    """If a call failed before any usage came back, then it is counted as costing $0."""
    nothing = dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens"))
    failed = row(outcome="failed", provider=None, **nothing)

    found = cost(failed, PRICING)

    assert found.usd == 0.0
    assert found.total_tokens == 0


@pytest.mark.parametrize("outcome", ["interrupted", "complete"])
def test_a_call_without_counts_is_unpriced(outcome: str) -> None:
    """If a stream was cut (or a server sent no usage), then its cost is unknown, not zero."""
    found = cost(
        row(outcome=outcome, prompt_tokens=None, completion_tokens=None, total_tokens=None),
        PRICING,
    )

    assert found.usd is None


def test_a_total_without_its_parts_counts_as_tokens_but_is_unpriced() -> None:
    """If only the total is known, then the tokens count and the cost is unknown."""
    found = cost(row(prompt_tokens=None, completion_tokens=None, total_tokens=77), PRICING)

    assert found.total_tokens == 77
    assert found.usd is None


def test_totals_add_priced_and_count_unpriced_calls() -> None:
    """If some calls are unpriced, then totals add the priced ones and count the others."""
    found = total([priced(0.25), priced(None), priced(0.5)])

    assert found == Totals(
        calls=3, prompt_tokens=30, completion_tokens=60, total_tokens=90, usd=0.75, unpriced=1
    )


def test_by_day_groups_by_calendar_day_oldest_first() -> None:
    """If calls fall on two days, then there is one total per day, oldest first, no empty days."""
    later = datetime(2025, 3, 17, 23, 59, tzinfo=UTC).timestamp()
    costs = [priced(1.0, created_at=later), priced(1.0), priced(2.0, created_at=NOON + 60)]

    days = by_day(costs, UTC)

    assert list(days) == [date(2025, 3, 15), date(2025, 3, 17)]
    assert days[date(2025, 3, 15)].usd == 3.0
    assert days[date(2025, 3, 15)].calls == 2


def test_by_model_separates_providers_and_puts_most_tokens_first() -> None:
    """If one model is served by two providers, then each pair has its own total, biggest first."""
    costs = [
        priced(0.1, provider="novita"),
        priced(0.2, provider="together", total_tokens=500),
        priced(0.1, model="other/model", provider="novita", total_tokens=1),
    ]

    pairs = by_model(costs)

    assert list(pairs) == [(MODEL, "together"), (MODEL, "novita"), ("other/model", "novita")]


def test_by_provider_adds_up_every_model() -> None:
    """If a provider served several models, then its total covers all of them."""
    costs = [priced(0.1), priced(0.2, model="other/model"), priced(None, provider=None)]

    providers = by_provider(costs)

    assert providers["novita"].calls == 2
    assert providers["novita"].usd == pytest.approx(0.3)
    assert providers[None].unpriced == 1


def test_day_and_month_follow_the_time_zone() -> None:
    """If a time is given with a zone, then its day and month start are that zone's."""
    assert day_of(NOON, UTC) == date(2025, 3, 15)
    assert month_start(NOON, UTC) == datetime(2025, 3, 1, tzinfo=UTC).timestamp()
    eastern = timezone(timedelta(hours=-5))
    first = datetime(2025, 3, 1, 2, 0, tzinfo=UTC).timestamp()
    assert month_start(first, eastern) == datetime(2025, 2, 1, tzinfo=eastern).timestamp()


def test_spend_below_warn_at_does_not_warn() -> None:
    """If the spend is under warn_at of the credits, then there is no warning."""
    found = check_credits(0.05, 0.10, 0.8)

    assert found.fraction == pytest.approx(0.5)
    assert not found.warn
    assert not found.over


def test_spend_at_warn_at_warns() -> None:
    """If the spend reaches warn_at exactly ($0.08 of $0.10 at 0.8), then it warns, float sums
    notwithstanding."""
    found = check_credits(0.1 * 0.8, 0.10, 0.8)

    assert found.warn
    assert not found.over


def test_spend_past_the_credits_is_over() -> None:
    """If the spend passes the credits, then it warns and says it is over."""
    found = check_credits(0.12, 0.10, 0.8)

    assert found.warn
    assert found.over


def test_no_spend_never_warns() -> None:
    """If nothing was spent, then there is no warning, even with warn_at 0 or no credits."""
    assert not check_credits(0.0, 0.10, 0.0).warn
    assert not check_credits(0.0, 0.0, 0.8).warn


def test_any_spend_with_no_credits_is_over() -> None:
    """If the included credits are 0, then any spend is over them and has no fraction."""
    found = check_credits(0.001, 0.0, 0.8)

    assert found.over
    assert found.warn
    assert found.fraction is None
