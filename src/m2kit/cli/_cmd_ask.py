"""The `m2 ask` command's options; its work is in `_ask`, imported when it runs."""

from __future__ import annotations

import click

from ._common import CONTEXT, connection_options, db_option, model_options, tool_options


@click.command(context_settings=CONTEXT)
@click.argument("prompt", required=False)
@model_options(system_help="A system prompt.")
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
    "--schema",
    metavar="FILE|JSON",
    help="Ask for a JSON answer valid for this JSON Schema (a file, or the schema itself when it"
    " starts with '{'); only the checked JSON is printed.",
)
@click.option(
    "--json-mode",
    is_flag=True,
    help="Ask for any JSON object as the answer; only the JSON is printed.",
)
@click.option(
    "--repairs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="With --schema or --json-mode: how many more times to ask when the answer is not valid.",
)
@tool_options
@connection_options
@click.option(
    "-c",
    "--continue",
    "continue_",
    is_flag=True,
    help="Continue the most recent conversation, its thinking sent back.",
)
@click.option("--cid", metavar="ID", help="Continue the conversation with this id (or id prefix).")
@click.option(
    "--include-interrupted",
    is_flag=True,
    help="With -c / --cid: also send back what arrived of interrupted replies.",
)
@click.option(
    "--no-log", is_flag=True, help="Do not keep this turn in the store (also M2_NO_LOG=1)."
)
@db_option
def ask(**values: object) -> None:
    """Ask a model one question and stream the answer to standard output.

    PROMPT is the question; text piped on standard input follows it as context. The thinking
    stays out of the way: --think shows it, on standard error.

    With tools (-T, --functions) the model may read files, run Python (after asking you, unless
    --yes) or call your own functions; each call is shown on standard error.

    \b
    Examples:
      m2 ask "Write a Python function to calculate factorial."
      git diff | m2 ask "Review this change." -m MiniMaxAI/MiniMax-M2:cheapest
      m2 ask --base-url http://localhost:8000/v1 --top-k 40 "Hello"
      m2 ask -c "And in Rust?"
      m2 ask --schema person.json "Invent a person."
      m2 ask -T read_file -T list_dir "What does this project do?"

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
