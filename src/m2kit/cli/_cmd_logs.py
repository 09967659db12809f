"""The `m2 logs` commands' options; their work is in `_logs`, imported when they run."""

from __future__ import annotations

import click

from ._common import CONTEXT, db_option

_JSON_HELP = "Print JSON for scripts instead of a table."


def _db(ctx: click.Context, db: str | None) -> str | None:
    """A subcommand's --db, else the one given before it (`m2 logs --db FILE show ID`).

    A flag beats M2_DB wherever it stands: both levels read the variable, so the subcommand's
    value may have come from there while the user typed the flag before it.
    """
    parent = ctx.parent
    if parent is None:
        return db
    given = parent.params.get("db")
    typed = click.core.ParameterSource.COMMANDLINE
    if ctx.get_parameter_source("db") != typed and parent.get_parameter_source("db") == typed:
        return given
    return db or given


@click.group(context_settings=CONTEXT, invoke_without_command=True)
@db_option
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many conversations to list, latest first.",
)
@click.option("--json", "json_output", is_flag=True, help=_JSON_HELP)
@click.pass_context
def logs(ctx: click.Context, db: str | None, limit: int, json_output: bool) -> None:
    """List, show, export and search the stored conversations.

    With no command, list the latest: id, time, model, first prompt, turns and tokens. Wherever
    an ID is taken, a unique prefix of it will do (the list shows short ones).

    \b
    Examples:
      m2 logs -n 5
      m2 logs show 3f2a9c1e --think
      m2 logs export 3f2a9c1e --format md > chat.md
      m2 logs search "factorial"
    """
    if ctx.invoked_subcommand is not None:
        return

    from ._logs import list_logs

    raise SystemExit(list_logs(db, limit=limit, json_output=json_output))


@logs.command(context_settings=CONTEXT)
@click.argument("conversation_id", metavar="ID")
@click.option("--think", is_flag=True, help="Include the model's thinking, dimmed.")
@click.option("--json", "json_output", is_flag=True, help="Print the conversation as JSON.")
@db_option
@click.pass_context
def show(
    ctx: click.Context, conversation_id: str, think: bool, json_output: bool, db: str | None
) -> None:
    """Print one conversation, turn by turn.

    Each prompt and reply, with the model, provider, tokens and time of each reply, and how an
    unfinished turn ended.

    \b
    Example:
      m2 logs show 3f2a9c1e --think
    """
    from ._logs import show as run

    raise SystemExit(run(_db(ctx, db), conversation_id, think=think, json_output=json_output))


@logs.command(context_settings=CONTEXT)
@click.argument("conversation_id", metavar="ID")
@click.option(
    "--format",
    "form",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Markdown (thinking folded in <details> blocks), or JSON that Conversation.load reads.",
)
@db_option
@click.pass_context
def export(ctx: click.Context, conversation_id: str, form: str, db: str | None) -> None:
    """Write one conversation to standard output, as Markdown or JSON.

    \b
    Examples:
      m2 logs export 3f2a9c1e > chat.md
      m2 logs export 3f2a9c1e --format json > chat.json
    """
    from ._logs import export as run

    raise SystemExit(run(_db(ctx, db), conversation_id, form="json" if form == "json" else "md"))


@logs.command(context_settings=CONTEXT)
@click.argument("text")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many matches to show, best first.",
)
@click.option("--json", "json_output", is_flag=True, help=_JSON_HELP)
@db_option
@click.pass_context
def search(ctx: click.Context, text: str, limit: int, json_output: bool, db: str | None) -> None:
    """Find the prompts and answers that contain TEXT.

    TEXT is matched as words in that order, ignoring case and accents.

    \b
    Example:
      m2 logs search "binary search"
    """
    from ._logs import search as run

    raise SystemExit(run(_db(ctx, db), text, limit=limit, json_output=json_output))
