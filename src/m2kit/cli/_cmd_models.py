"""The `m2 models` command's options; its work is in `_models`, imported when it runs."""

from __future__ import annotations

import click

from .._request import DEFAULT_BASE_URL
from ._common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("query", required=False, default="")
@click.option(
    "--base-url",
    envvar="M2_BASE_URL",
    show_envvar=True,
    help="OpenAI-compatible base URL whose /models to list, e.g. http://localhost:8000/v1."
    f"  [default: {DEFAULT_BASE_URL}]",
)
@click.option(
    "--api-key",
    help="API key. Default: M2_API_KEY; on Hugging Face, HF_TOKEN or `hf auth login`.",
)
@click.option("--refresh", is_flag=True, help="Fetch the list again, however fresh the cache is.")
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print the matching entries as a JSON list, exactly as the server sent them.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="How long to wait for the server to say anything.  [default: 30, or timeout in config]",
)
def models(**values: object) -> None:
    """List the router's models with their providers' prices and speeds.

    Each provider's status, context length, input/output price, first-token latency,
    throughput, and tools and structured-output support. QUERY keeps the models whose id
    contains it (ignoring case). An exact model id shows that model's providers and which one
    :fastest and :cheapest would pick by the published figures. The list is cached on disk for
    an hour; --refresh fetches it again.

    \b
    Examples:
      m2 models minimax
      m2 models MiniMaxAI/MiniMax-M2
      m2 models --json | jq '.[].id'
      m2 models --base-url http://localhost:8000/v1
    """
    from ._models import ModelsOptions, run
    from ._output import clean_values

    clean_values(values)
    raise SystemExit(run(ModelsOptions(**values)))  # type: ignore[arg-type]  # click checked the types
