"""The `m2 ask` command's options; its work is in `_ask`, imported when it runs."""

from __future__ import annotations

import click

from .._request import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_TEMPERATURE,
    DEFAULT_TIMEOUT,
    DEFAULT_TOP_P,
)
from .._retry import RetryPolicy
from ._common import CONTEXT, db_option


@click.command(context_settings=CONTEXT)
@click.argument("prompt", required=False)
@click.option(
    "-m",
    "--model",
    envvar="M2_MODEL",
    show_envvar=True,
    help="Model id, with an optional routing suffix: :fastest, :cheapest, :preferred or"
    f" :<provider>.  [default: {DEFAULT_MODEL}]",
)
@click.option(
    "--base-url",
    envvar="M2_BASE_URL",
    show_envvar=True,
    help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 for vLLM or SGLang."
    f"  [default: {DEFAULT_BASE_URL}]",
)
@click.option(
    "--api-key",
    help="API key. Default: M2_API_KEY; on Hugging Face, HF_TOKEN or `hf auth login`.",
)
@click.option("-s", "--system", help="A system prompt.")
@click.option(
    "--profile",
    metavar="NAME",
    help="How the model writes its thinking, when the model name does not tell (a self-hosted"
    " server's served name): minimax-m2, default, ...",
)
@click.option(
    "--max-tokens", type=click.IntRange(min=1), help="Most tokens to generate, thinking included."
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    help=f"Sampling temperature.  [default: {DEFAULT_TEMPERATURE}]",
)
@click.option(
    "--top-p",
    type=click.FloatRange(0.0, 1.0),
    help=f"Nucleus sampling.  [default: {DEFAULT_TOP_P}]",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    help="Top-k sampling (self-hosted servers only: the router refuses it, so it is dropped).",
)
@click.option("--seed", type=int, help="Sampling seed.")
@click.option("--stop", multiple=True, help="A stop sequence; repeat for several.")
@click.option("--think", is_flag=True, help="Also show the thinking, on standard error.")
@click.option(
    "--raw",
    is_flag=True,
    help="Print the content exactly as received, tags included, once the reply is complete.",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print one JSON object: answer, reasoning, raw, model, provider, usage, ...",
)
@click.option("--no-stream", is_flag=True, help="Wait for the whole reply instead of streaming.")
@click.option(
    "--retry-budget",
    type=click.FloatRange(min=0.0),
    metavar="SECONDS",
    help="How long to keep retrying rate limits, loading models and server errors."
    f"  [default: {RetryPolicy().budget:g}]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="How long to wait for the server to say anything before giving up."
    f"  [default: {DEFAULT_TIMEOUT:g}]",
)
@click.option(
    "-c",
    "--continue",
    "continue_",
    is_flag=True,
    help="Continue the most recent conversation, its thinking sent back.",
)
@click.option("--cid", metavar="ID", help="Continue the conversation with this id (or id prefix).")
@click.option(
    "--no-log", is_flag=True, help="Do not keep this turn in the store (also M2_NO_LOG=1)."
)
@db_option
def ask(**values: object) -> None:
    """Ask a model one question and stream the answer to standard output.

    PROMPT is the question; text piped on standard input follows it as context. The thinking
    stays out of the way: --think shows it, on standard error.

    \b
    Examples:
      m2 ask "Write a Python function to calculate factorial."
      git diff | m2 ask "Review this change." -m MiniMaxAI/MiniMax-M2:cheapest
      m2 ask --base-url http://localhost:8000/v1 --top-k 40 "Hello"
      m2 ask -c "And in Rust?"

    Every turn is kept in a local store (see m2 logs) unless --no-log or M2_NO_LOG=1.
    Settings not given here come from the config file (m2 config), then the defaults.
    """
    from ._ask import AskOptions, run
    from ._output import clean_text, clean_values

    values["stream"] = not values.pop("no_stream")
    stop = values["stop"]
    assert isinstance(stop, tuple)  # click gives a `multiple` option as a tuple
    values["stop"] = [clean_text(str(text)) for text in stop]
    clean_values(values)
    raise SystemExit(run(AskOptions(**values)))  # type: ignore[arg-type]  # click checked the types
