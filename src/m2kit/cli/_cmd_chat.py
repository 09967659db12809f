"""The `m2 chat` command's options; the session is in `_chat`, imported when it runs."""

from __future__ import annotations

import click

from .._request import DEFAULT_BASE_URL, DEFAULT_MODEL, DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from ._common import CONTEXT, db_option


@click.command(context_settings=CONTEXT)
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
@click.option("-s", "--system", help="A system prompt (/system changes it in the session).")
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
    help=f"Sampling temperature.  [default: {DEFAULT_TEMPERATURE}, or the config file's]",
)
@click.option(
    "--top-p",
    type=click.FloatRange(0.0, 1.0),
    help=f"Nucleus sampling.  [default: {DEFAULT_TOP_P}, or the config file's]",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    help="Top-k sampling (self-hosted servers only: the router refuses it, so it is dropped).",
)
@click.option(
    "--retry-budget",
    type=click.FloatRange(min=0.0),
    metavar="SECONDS",
    help="How long to keep retrying rate limits, loading models and server errors.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="How long to wait for the server to say anything before giving up.",
)
@db_option
@click.option(
    "--no-log",
    is_flag=True,
    help="Keep this session out of the store, and the prompt history in memory only"
    " (also M2_NO_LOG=1).",
)
@click.option("--cid", metavar="ID", help="Go on with the stored conversation ID (see `m2 logs`).")
@click.option(
    "-c",
    "--continue",
    "resume",
    is_flag=True,
    help="Go on with the most recent stored conversation.",
)
def chat(**values: object) -> None:
    """Hold a conversation with a model in the terminal; the thinking goes back every turn.

    Enter sends, Alt-Enter (or Esc then Enter) starts a new line, Ctrl-C stops a reply, Ctrl-D
    leaves. /help lists the slash commands: /think, /model, /system, /retry, /new, /save,
    /usage. Every turn is kept in the store unless --no-log; `m2 chat -c` picks up where you
    left off. With standard input not a terminal, each line read is one turn and the answers
    are printed plain.

    \b
    Examples:
      m2 chat
      m2 chat -m MiniMaxAI/MiniMax-M2:cheapest -s "Answer briefly."
      m2 chat -c
      printf 'Hello\\nAnd in French?\\n' | m2 chat
    """
    from ._chat import ChatOptions, run
    from ._output import clean_values

    clean_values(values)
    raise SystemExit(run(ChatOptions(**values)))  # type: ignore[arg-type]  # click checked the types
