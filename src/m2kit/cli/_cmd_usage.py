"""The `m2 usage` command's options; its work is in `_usage`, imported when it runs."""

from __future__ import annotations

import click

from ._common import CONTEXT, db_option


@click.command(context_settings=CONTEXT)
@click.option(
    "--since",
    default="7d",
    show_default=True,
    metavar="PERIOD",
    help="24h (the last 24 hours), 7d (today and the 6 days before), 30d, 2w, or a date such as"
    " 2025-06-01.",
)
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object for scripts.")
@click.option(
    "--offline",
    is_flag=True,
    help="Do not fetch the router's price list: estimate with the config's prices only.",
)
@click.option(
    "--base-url",
    metavar="URL",
    envvar="M2_BASE_URL",
    show_envvar=True,
    help="Where to read the model catalogue, with its prices, from.  [default: the router]",
)
@db_option
def usage(**values: object) -> None:
    """Show tokens, calls and estimated spend against your credits.

    Per day, per model and per provider, from the store, with a chart of tokens per day. Spend
    is estimated from each provider's per-token prices in the router's catalogue (or the
    config's `prices`), and this month's is set against the included credits
    (credits.monthly_usd: $0.10 free, $2.00 PRO), with a warning past credits.warn_at.

    \b
    Examples:
      m2 usage
      m2 usage --since 30d
      m2 usage --since 2025-06-01 --json
    """
    from ._output import clean_values
    from ._usage import UsageOptions, run

    clean_values(values)
    raise SystemExit(run(UsageOptions(**values)))  # type: ignore[arg-type]  # click checked the types
