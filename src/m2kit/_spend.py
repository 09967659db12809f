"""Spend estimates from the usage log: token counts times per-token prices. No I/O.

Prices are in USD per million tokens, as the router's catalogue publishes them. A call is priced
by the model it asked for, without its routing suffix (`:fastest`), and the provider that served
it (the pinned one, `:novita`, when the server did not say); a provider's prices in the config
(`[prices.<provider>]`) win over the catalogue's, for every model. Reasoning tokens are part of
the completion tokens and priced as output. A call whose tokens or price are unknown is counted
as unpriced, never as free. These are estimates: the router bills from its own records.

Days and months are calendar ones in `tz`, the local time zone when it is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from ._routing import POLICIES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import tzinfo

    from ._catalog import Model
    from ._store_rows import UsageRow

_K = TypeVar("_K")
_PER = 1_000_000
# Slack for float sums: $0.08 of $0.10 at warn_at 0.8 must warn.
_EPSILON = 1e-12


@dataclass(frozen=True, slots=True)
class Price:
    """What a provider charges for a model, in USD per million tokens; None where unknown."""

    input: float | None = None
    output: float | None = None


class Pricing:
    """Prices by model and provider: the catalogue's offers, under the config's overrides.

    `catalog` maps (model id, provider) to the catalogue's price; `overrides` maps a provider to
    its `input`/`output` prices, as `Config.prices` holds them. Names match ignoring case.
    """

    def __init__(
        self,
        catalog: Mapping[tuple[str, str], Price] | None = None,
        overrides: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._catalog = {
            (model.casefold(), provider.casefold()): price
            for (model, provider), price in (catalog or {}).items()
        }
        self._overrides = {
            provider.casefold(): dict(prices) for provider, prices in (overrides or {}).items()
        }

    def price(self, model: str | None, provider: str | None) -> Price:
        """The price of `model` (without its routing suffix) served by `provider`."""
        if provider is None:
            return Price()

        listed = self._catalog.get(((model or "").casefold(), provider.casefold()), Price())
        own = self._overrides.get(provider.casefold(), {})
        return Price(own.get("input", listed.input), own.get("output", listed.output))


def catalog_prices(models: Iterable[Model]) -> dict[tuple[str, str], Price]:
    """(model id, provider) -> price, for every provider offer in a parsed catalogue."""
    return {
        (model.id, offer.provider): Price(offer.input_price, offer.output_price)
        for model in models
        for offer in model.providers
    }


def base_model(model: str) -> str:
    """A model id without its routing suffix: `org/name:fastest` -> `org/name`."""
    return model.partition(":")[0]


def served_by(model: str | None, provider: str | None) -> str | None:
    """Who served a call: the provider the server named, else the one the model id pins."""
    if provider:
        return provider
    route = (model or "").partition(":")[2]
    return route if route and route not in POLICIES else None


@dataclass(frozen=True, slots=True)
class Cost:
    """One call of the usage log, priced. `usd` is None when it cannot be estimated: its token
    counts are missing (a stream cut before its usage), or so is a price it needs."""

    created_at: float
    model: str | None
    provider: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    usd: float | None
    counted: bool = True  # False: the server never sent its token counts


def cost(row: UsageRow, pricing: Pricing) -> Cost:
    """The estimated cost of one call. A failed call with no token counts cost nothing."""
    model = base_model(row.model) if row.model else None
    provider = served_by(row.model, row.provider)
    prompt, completion = row.prompt_tokens, row.completion_tokens
    known = [count for count in (prompt, completion) if count is not None]
    total = row.total_tokens if row.total_tokens is not None else sum(known)

    usd: float | None
    counted = prompt is not None and completion is not None
    if not counted:
        counted_nothing = not known and row.total_tokens is None
        usd = 0.0 if counted_nothing and row.outcome == "failed" else None
    else:
        usd = _charge(prompt or 0, completion or 0, pricing.price(model, provider))

    tokens = (prompt or 0, completion or 0, total)
    return Cost(row.created_at, model, provider, *tokens, usd=usd, counted=counted)


def _charge(prompt: int, completion: int, price: Price) -> float | None:
    parts = ((prompt, price.input), (completion, price.output))
    if any(tokens and per_million is None for tokens, per_million in parts):
        return None
    return sum(tokens * (per_million or 0.0) for tokens, per_million in parts) / _PER


@dataclass(frozen=True, slots=True)
class Totals:
    """Calls and tokens added up; `usd` covers the priced calls, `unpriced` counts the others,
    `uncounted` those of them that have no token counts (no price would help those)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    usd: float = 0.0
    unpriced: int = 0
    uncounted: int = 0

    def add(self, item: Cost) -> Totals:
        return Totals(
            calls=self.calls + 1,
            prompt_tokens=self.prompt_tokens + item.prompt_tokens,
            completion_tokens=self.completion_tokens + item.completion_tokens,
            total_tokens=self.total_tokens + item.total_tokens,
            usd=self.usd + (item.usd or 0.0),
            unpriced=self.unpriced + (item.usd is None),
            uncounted=self.uncounted + (item.usd is None and not item.counted),
        )


def total(costs: Iterable[Cost]) -> Totals:
    found = Totals()
    for item in costs:
        found = found.add(item)
    return found


def group(costs: Iterable[Cost], key: Callable[[Cost], _K]) -> dict[_K, Totals]:
    """Totals for each key, in the order the keys first appear."""
    groups: dict[_K, Totals] = {}
    for item in costs:
        name = key(item)
        groups[name] = groups.get(name, Totals()).add(item)
    return groups


def day_of(when: float, tz: tzinfo | None = None) -> date:
    """The calendar day of a time (seconds since the epoch)."""
    return datetime.fromtimestamp(when, tz).date()


def by_day(costs: Iterable[Cost], tz: tzinfo | None = None) -> dict[date, Totals]:
    """Totals per calendar day, oldest first; days without calls are left out."""
    days = group(costs, lambda item: day_of(item.created_at, tz))
    return dict(sorted(days.items()))


def by_model(costs: Iterable[Cost]) -> dict[tuple[str | None, str | None], Totals]:
    """Totals per (model, provider), most tokens first."""
    pairs = group(costs, lambda item: (item.model, item.provider))
    return dict(sorted(pairs.items(), key=lambda pair: -pair[1].total_tokens))


def by_provider(costs: Iterable[Cost]) -> dict[str | None, Totals]:
    """Totals per provider, most tokens first."""
    providers = group(costs, lambda item: item.provider)
    return dict(sorted(providers.items(), key=lambda pair: -pair[1].total_tokens))


def month_start(now: float, tz: tzinfo | None = None) -> float:
    """The first moment of the calendar month `now` is in, in seconds since the epoch."""
    today = datetime.fromtimestamp(now, tz)
    return datetime(today.year, today.month, 1, tzinfo=tz).timestamp()


@dataclass(frozen=True, slots=True)
class CreditCheck:
    """A month's estimated spend set against the included credits.

    `fraction` is spend / credits (None when the credits are 0); `warn` is True once the spend
    reaches `warn_at` of the credits, and `over` once it is past them.
    """

    spent: float
    included: float
    warn_at: float
    fraction: float | None
    warn: bool
    over: bool


def check_credits(spent: float, included: float, warn_at: float) -> CreditCheck:
    """Whether a month's estimated spend (USD) calls for a warning; no spend never does."""
    fraction = spent / included if included > 0 else None
    over = spent > included + _EPSILON
    warn = spent > 0 and (over or spent + _EPSILON >= warn_at * included)
    return CreditCheck(spent, included, warn_at, fraction, warn, over)
