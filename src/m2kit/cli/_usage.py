"""`m2 usage`: calls, tokens and estimated spend from the store's usage log.

Prices come from the router's catalogue (cached for an hour) under the config's `prices`
overrides; `--offline`, or a catalogue that cannot be fetched, leaves the overrides alone. The
month's spend, for the calendar month in local time, is set against `credits.monthly_usd`.
Notes and the credit warning go to standard error, so `--json` output stays clean.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import _spend
from .._errors import BILLING_PAGE, ConfigError, M2Error
from ._common import load_config
from ._logs import existing_store, store_path, when
from ._output import guarded, line_table, say, stdout_console, write_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from rich.console import Console

    from .._config import Config
    from .._spend import Cost, CreditCheck, Pricing, Totals

# Seconds to wait for the catalogue: a price list is not worth a long stall.
CATALOG_TIMEOUT = 10.0
_PERIOD = re.compile(r"\s*(\d+)\s*([hdw])\s*", re.IGNORECASE)
_SINCE_HINT = "Use 24h, 7d, 30d, 2w, or a date such as 2025-06-01."
# A bar's last character, by how many eighths of a block it holds.
_EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
_CREDITS_KEY = "credits.monthly_usd"


@dataclass(frozen=True)
class UsageOptions:
    """What `m2 usage` was given; the defaults live with the click options."""

    since: str
    json_output: bool
    offline: bool
    base_url: str | None
    db: str | None


@dataclass(frozen=True)
class _Prices:
    """The prices to estimate with, and where they came from."""

    pricing: Pricing
    catalog: bool
    problem: str | None


def run(options: UsageOptions) -> int:
    """Run `m2 usage`; returns the exit code."""
    return guarded(lambda: _usage(options))


def parse_since(text: str, now: float) -> float:
    """The start of the period `--since` names, in seconds since the epoch.

    `24h` is the last 24 hours; `7d` is today and the 6 days before, from local midnight; `2w` is
    `14d`; a date (`2025-06-01`) starts at its local midnight, a date and time (`2025-06-01T09:30`,
    local unless it carries an offset) at that moment. Raises ConfigError for anything else.
    """
    found = _PERIOD.fullmatch(text)
    if found:
        count, unit = int(found[1]), found[2].lower()
        if count < 1:
            raise ConfigError(f"--since {text.strip()} is an empty period", hint=_SINCE_HINT)
        if unit == "h":
            return now - count * 3600
        days = count * 7 if unit == "w" else count
        first = datetime.fromtimestamp(now).date() - timedelta(days=days - 1)
        return datetime(first.year, first.month, first.day).timestamp()

    # Python 3.10's fromisoformat does not read a trailing Z.
    iso = text.strip().removesuffix("Z").removesuffix("z")
    zulu = iso != text.strip()
    try:
        moment = datetime.fromisoformat(iso + ("+00:00" if zulu else ""))
    except ValueError:
        raise ConfigError(
            f"--since {text.strip()!r} is neither a period nor a date", hint=_SINCE_HINT
        ) from None
    start = moment.timestamp()
    if start > now:
        raise ConfigError(f"--since {text.strip()} is in the future", hint=_SINCE_HINT)
    return start


def _usage(options: UsageOptions) -> None:
    now = time.time()
    start = parse_since(options.since, now)
    config = load_config()
    month = _spend.month_start(now)

    with existing_store(store_path(options.db)) as store:
        rows = store.usage(since=min(start, month)) if store else []

    prices = _prices(options, config)
    costs = [_spend.cost(row, prices.pricing) for row in rows]
    period = [item for item in costs if item.created_at >= start]
    this_month = _spend.total(item for item in costs if item.created_at >= month)
    credits = _spend.check_credits(
        this_month.usd, config.credits_monthly_usd, config.credits_warn_at
    )

    if options.json_output:
        write_json(_report_json(period, this_month, credits, prices, start, now, month))
    else:
        _show(period, this_month, credits, config, start, now)
    _notes(prices, _spend.total(costs), this_month, credits)


def _prices(options: UsageOptions, config: Config) -> _Prices:
    overrides = config.prices
    if options.offline:
        return _Prices(_spend.Pricing(overrides=overrides), catalog=False, problem=None)

    from .._auth import resolve_token
    from .._catalog import load_catalog
    from .._request import DEFAULT_BASE_URL

    base_url = options.base_url or config.base_url or DEFAULT_BASE_URL
    try:
        found = load_catalog(base_url, resolve_token(base_url), timeout=CATALOG_TIMEOUT)
    except M2Error as error:
        problem = " ".join(str(error).split())
        return _Prices(_spend.Pricing(overrides=overrides), catalog=False, problem=problem)
    pricing = _spend.Pricing(_spend.catalog_prices(found.models), overrides)
    return _Prices(pricing, catalog=True, problem=None)


def _notes(prices: _Prices, every: Totals, month: Totals, credits: CreditCheck) -> None:
    if prices.problem is not None:
        say(
            f"m2: could not get prices from the model catalogue ({prices.problem}): estimating"
            " with the config's prices only."
        )
    priceless = every.unpriced - every.uncounted
    if priceless:
        say(
            f"m2: {_plural(priceless, 'call')} could not be priced (no price known for the model"
            " and provider), so the estimates are lower bounds: set prices.<provider>.input and"
            " .output with `m2 config set` to price a provider."
        )
    if every.uncounted:
        say(
            f"m2: {_plural(every.uncounted, 'call')} had no token counts (the server sent none, or"
            " the reply was cut off before it did), so the estimates are lower bounds."
        )
    if credits.warn:
        say(_warning(credits, lower_bound=month.unpriced > 0))


def _warning(credits: CreditCheck, *, lower_bound: bool) -> str:
    spent = ("at least " if lower_bound else "") + _usd(credits.spent)
    included = _usd(credits.included, places=2)
    if credits.over:
        return (
            f"m2: warning: the estimated spend this month, {spent}, is past the {included} of"
            f" included credits: further calls use pre-paid credits, or fail with 402 without"
            f" them. See {BILLING_PAGE}."
        )
    share = f"{credits.fraction:.0%}" if credits.fraction is not None else "all"
    return (
        f"m2: warning: the estimated spend this month, {spent}, is {share} of the {included} of"
        f" included credits (credits.warn_at is {credits.warn_at:g})."
    )


def _usd(amount: float, places: int = 4) -> str:
    # A short answer costs a few millionths of a dollar, which would round to nothing.
    smallest = 10.0**-places
    if 0 < amount < smallest / 2:
        return f"<${smallest:.{places}f}"
    return f"${amount:,.{places}f}"


def _plural(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def _spent(totals: Totals) -> str:
    unpriced = f" + {_plural(totals.unpriced, 'unpriced call')}" if totals.unpriced else ""
    return _usd(totals.usd) + unpriced


def _cell_usd(totals: Totals) -> str:
    if totals.unpriced == totals.calls and totals.calls:
        return "?"
    return _usd(totals.usd) + (" + ?" if totals.unpriced else "")


def _totals_json(totals: Totals) -> dict[str, Any]:
    return {
        "calls": totals.calls,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "total_tokens": totals.total_tokens,
        "usd": round(totals.usd, 10),
        "unpriced_calls": totals.unpriced,
    }


def _report_json(
    period: Sequence[Cost],
    month: Totals,
    credits: CreditCheck,
    prices: _Prices,
    start: float,
    now: float,
    month_start: float,
) -> dict[str, Any]:
    return {
        "since": start,
        "until": now,
        "totals": _totals_json(_spend.total(period)),
        "days": [
            {"day": day.isoformat(), **_totals_json(totals)}
            for day, totals in _spend.by_day(period).items()
        ],
        "models": [
            {"model": model, "provider": provider, **_totals_json(totals)}
            for (model, provider), totals in _spend.by_model(period).items()
        ],
        "providers": [
            {"provider": provider, **_totals_json(totals)}
            for provider, totals in _spend.by_provider(period).items()
        ],
        "month": {
            "start": month_start,
            **_totals_json(month),
            "included_usd": credits.included,
            "warn_at": credits.warn_at,
            "fraction": credits.fraction,
            "warning": credits.warn,
            "over": credits.over,
        },
        "prices": {"catalog": prices.catalog, "problem": prices.problem},
    }


def _show(
    period: Sequence[Cost],
    month: Totals,
    credits: CreditCheck,
    config: Config,
    start: float,
    now: float,
) -> None:
    from rich.text import Text

    out = stdout_console()
    totals = _spend.total(period)
    since = when(start)
    summary = f"Since {since}: {_plural(totals.calls, 'call')}, {totals.total_tokens:,} tokens"
    out.print(Text(f"{summary}, about {_spent(totals)}.", style="bold"), soft_wrap=True)

    if period:
        out.print()
        _tables(out, period)
        out.print()
        out.print(Text("Tokens per day", style="bold"))
        days = _spend.by_day(period)
        every = _days(min(days), datetime.fromtimestamp(now).date())
        chart = [(day.isoformat(), days[day].total_tokens if day in days else 0) for day in every]
        for line in bars(chart, out.width, unicode=out.encoding.lower().startswith("utf")):
            out.print(Text(line, style="green"))

    out.print()
    out.print(Text(_credits_line(month, credits, config, now)), soft_wrap=True)


def _tables(out: Console, period: Sequence[Cost]) -> None:
    counts = ["Calls", "Prompt", "Completion", "Tokens", "Est. USD"]
    right = set(counts)
    days = [[day.isoformat(), *_counts(totals)] for day, totals in _spend.by_day(period).items()]
    out.print(line_table(out, ["Day", *counts], days, flexible="Day", right=right))
    out.print()

    models = [
        [model or "unknown", provider or "unknown", *_counts(totals)]
        for (model, provider), totals in _spend.by_model(period).items()
    ]
    headers = ["Model", "Provider", *counts]
    out.print(line_table(out, headers, models, flexible="Model", right=right))
    out.print()

    providers = [
        [provider or "unknown", *_counts(totals)]
        for provider, totals in _spend.by_provider(period).items()
    ]
    out.print(line_table(out, ["Provider", *counts], providers, flexible="Provider", right=right))


def _counts(totals: Totals) -> list[str]:
    return [
        f"{totals.calls:,}",
        f"{totals.prompt_tokens:,}",
        f"{totals.completion_tokens:,}",
        f"{totals.total_tokens:,}",
        _cell_usd(totals),
    ]


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def bars(values: Sequence[tuple[str, int]], width: int, *, unicode: bool = True) -> list[str]:
    """A horizontal bar chart, one line per (label, value), at most `width` characters wide.

    The longest bar takes the room the labels and numbers leave; with `unicode`, bars end in
    eighths of a block, else they are drawn with `#`. A value above 0 always shows.
    """
    if not values:
        return []
    label_width = max(len(label) for label, _ in values)
    numbers = [f"{value:,}" for _, value in values]
    number_width = max(len(number) for number in numbers)
    room = max(width - label_width - number_width - 3, 1)
    peak = max(value for _, value in values)

    lines = []
    for (label, value), number in zip(values, numbers, strict=True):
        share = value / peak if peak else 0.0
        if unicode:
            eighths = max(round(share * room * 8), 1 if value else 0)
            bar = "█" * (eighths // 8) + _EIGHTHS[eighths % 8]
        else:
            bar = "#" * max(round(share * room), 1 if value else 0)
        lines.append(f"{label.ljust(label_width)} {bar.ljust(room)} {number.rjust(number_width)}")
    return lines


def _credits_line(month: Totals, credits: CreditCheck, config: Config, now: float) -> str:
    name = datetime.fromtimestamp(now).strftime("%B %Y")
    included = _usd(credits.included, places=2)
    line = f"This month ({name}): about {_usd(month.usd)} of the {included} included credits"
    if credits.fraction is not None:
        line += f" ({credits.fraction:.0%})"
    if month.unpriced:
        line += f", not counting {_plural(month.unpriced, 'unpriced call')}"
    line += "."
    if _CREDITS_KEY not in config.from_file:
        line += f" PRO accounts get $2.00: `m2 config set {_CREDITS_KEY} 2.00`."
    return line
