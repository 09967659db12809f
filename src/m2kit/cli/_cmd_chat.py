"""The `m2 chat` command's options; the session is in `_chat`, imported when it runs."""

from __future__ import annotations

import click

from ._common import CONTEXT, connection_options, db_option, model_options, tool_options


@click.command(context_settings=CONTEXT)
@model_options(system_help="A system prompt (/system changes it in the session).")
@connection_options
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
@click.option(
    "--include-interrupted",
    is_flag=True,
    help="Send back what arrived of interrupted replies too (by default they are left out).",
)
@tool_options
def chat(**values: object) -> None:
    """Hold a conversation with a model in the terminal; the thinking goes back every turn.

    Enter sends, Alt-Enter (or Esc then Enter) starts a new line, Ctrl-C stops a reply, Ctrl-D
    leaves. /help lists the slash commands: /think, /model, /system, /retry, /new, /save,
    /usage, /tools. Every turn is kept in the store unless --no-log; `m2 chat -c` picks up where
    you left off. With standard input not a terminal, each line read is one turn and the
    answers are printed plain.

    With tools (-T, --functions) the model may read files, run Python (after asking you, unless
    --yes) or call your own functions; each call is shown as it happens.

    \b
    Examples:
      m2 chat
      m2 chat -m MiniMaxAI/MiniMax-M2:cheapest -s "Answer briefly."
      m2 chat -c
      m2 chat -T read_file,list_dir
      printf 'Hello\\nAnd in French?\\n' | m2 chat
    """
    from ._chat import ChatOptions, run
    from ._output import clean_values

    clean_values(values)
    raise SystemExit(run(ChatOptions(**values)))  # type: ignore[arg-type]  # click checked the types
