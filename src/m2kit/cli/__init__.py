"""The `m2` command.

Built on click rather than typer: typer builds pydantic type adapters for every parameter at each
start, which measured here cost about 0.15 s per `m2` run. Only click is imported up front; the
client loads when a command runs.
"""

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
from .._version import __version__

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="m2", message="%(prog)s %(version)s")
def app() -> None:
    """MiniMax-M2 and other open chat models through Hugging Face Inference Providers.

    Set HF_TOKEN (or run `hf auth login`), then:  m2 ask "Write a haiku about rain."
    """


@app.command(context_settings=_CONTEXT)
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
    default=DEFAULT_TEMPERATURE,
    show_default=True,
    help="Sampling temperature.",
)
@click.option(
    "--top-p",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_TOP_P,
    show_default=True,
    help="Nucleus sampling.",
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
    default=RetryPolicy().budget,
    show_default=True,
    metavar="SECONDS",
    help="How long to keep retrying rate limits, loading models and server errors.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the server to say anything before giving up.",
)
def ask(**values: object) -> None:
    """Ask a model one question and stream the answer to standard output.

    PROMPT is the question; text piped on standard input follows it as context. The thinking
    stays out of the way: --think shows it, on standard error.

    \b
    Examples:
      m2 ask "Write a Python function to calculate factorial."
      git diff | m2 ask "Review this change." -m MiniMaxAI/MiniMax-M2:cheapest
      m2 ask --base-url http://localhost:8000/v1 --top-k 40 "Hello"
    """
    from ._ask import AskOptions, clean_text, run

    values["stream"] = not values.pop("no_stream")
    stop = values["stop"]
    assert isinstance(stop, tuple)  # click gives a `multiple` option as a tuple
    values["stop"] = [clean_text(str(text)) for text in stop]
    for name, value in values.items():
        if isinstance(value, str):
            values[name] = clean_text(value)
    raise SystemExit(run(AskOptions(**values)))  # type: ignore[arg-type]  # click checked the types


def main() -> None:
    """The `m2` entry point."""
    app()
