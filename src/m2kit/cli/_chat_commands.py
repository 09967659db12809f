"""The slash commands of `m2 chat`, and the one entry that tells them from messages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import M2Error
from ._output import error_line

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._chat_session import Session

    # Takes the session and the text after the command's name; False means "leave".
    Command = Callable[[Session, str], bool]

WELCOME_KEYS = "Enter sends · Alt-Enter (or Esc Enter): new line"
KEYS = f"{WELCOME_KEYS} · Ctrl-C stops a reply · Ctrl-D leaves"
_MARKDOWN_SUFFIXES = (".md", ".markdown")

HELP = f"""\
/think [on|off]  show the thinking as it streams, or keep it folded behind its timer
/model [NAME]    use another model from the next turn on (alone: name the current one)
/system [TEXT]   set the system prompt (alone: show it; /system off removes it)
/retry           send the last message again, in place of its reply
/new             start a new conversation, with the same model and system prompt
/save PATH       save the conversation as JSON, or as Markdown when PATH ends in .md
/usage           this session's calls and tokens
/tools           the tools the model may call (m2 chat -T NAME, --functions FILE.py)
/help            this list
/exit            leave (so does Ctrl-D)
//TEXT           send a message that starts with "/"
{KEYS}"""


def handle(session: Session, line: str) -> bool:
    """Act on one input: run a slash command, or send a message. False when the user leaves."""
    text = line.strip()
    if not text:
        return True
    if text.startswith("//"):
        session.send(text[1:])
        return True
    if not text.startswith("/"):
        # Trailing spaces and blank lines go; a pasted block keeps its indentation.
        session.send(line.rstrip().lstrip("\r\n"))
        return True

    # Split at any white space: "/system" may be followed by a new line and then the text.
    name, *rest = text[1:].split(None, 1) or [""]
    name, argument = name.lower(), rest[0].strip() if rest else ""

    command = COMMANDS.get(name)
    if command is None:
        session.error(f"m2: unknown command /{name}: /help lists them (// sends a leading /).")
        return True
    try:
        return command(session, argument)
    except M2Error as error:
        session.error(error_line(error))
        return True


def _think(session: Session, argument: str) -> bool:
    choices = {"": not session.think, "on": True, "off": False}
    if argument.lower() not in choices:
        session.error("m2: /think takes on, off or nothing (to switch).")
        return True
    session.think = choices[argument.lower()]
    shown = "shown as it streams" if session.think else "folded behind its timer"
    session.screen.note(f"m2: thinking {shown}")
    return True


def _model(session: Session, argument: str) -> bool:
    if argument:
        session.set_model(argument)
    session.screen.note(f"m2: model {session.model}")
    return True


def _system(session: Session, argument: str) -> bool:
    conversation = session.conversation
    if argument.lower() == "off":
        conversation.system = None
    elif argument:
        conversation.system = argument
    if conversation.system is None:
        session.screen.note("m2: no system prompt")
    else:
        session.screen.note(f"m2: system prompt: {conversation.system}")
    return True


def _retry(session: Session, argument: str) -> bool:
    if _no_argument(session, "retry", argument):
        session.retry()
    return True


def _new(session: Session, argument: str) -> bool:
    if _no_argument(session, "new", argument):
        session.new()
        session.screen.note(f"m2: new conversation with {session.model}")
    return True


def _save(session: Session, argument: str) -> bool:
    if not argument:
        session.error("m2: /save needs a path, e.g. /save chat.md or /save chat.json")
        return True

    path = Path(argument).expanduser()
    conversation = session.conversation
    try:
        if path.suffix.lower() in _MARKDOWN_SUFFIXES:
            path.write_text(conversation.to_markdown(), encoding="utf-8")
        else:
            conversation.save(path)
    except OSError as exc:
        session.error(f"m2: error: cannot write {path}: {exc.strerror or exc}")
        return True
    turns = len(conversation.turns)
    session.screen.note(f"m2: saved {turns} turn{'' if turns == 1 else 's'} to {path}")
    return True


def _usage(session: Session, argument: str) -> bool:
    if _no_argument(session, "usage", argument):
        session.screen.show(session.tally.describe())
    return True


def _tools(session: Session, argument: str) -> bool:
    if not _no_argument(session, "tools", argument):
        return True
    if session.tools is None:
        session.screen.note(
            "m2: no tools: start m2 chat with -T NAME (read_file, list_dir, run_python or all)"
            " or --functions FILE.py"
        )
    else:
        session.screen.show(session.tools.describe())
    return True


def _help(session: Session, argument: str) -> bool:
    session.screen.show(HELP)
    return True


def _exit(session: Session, argument: str) -> bool:
    return False


def _no_argument(session: Session, name: str, argument: str) -> bool:
    if argument:
        session.error(f"m2: /{name} takes no argument")
    return not argument


COMMANDS: dict[str, Command] = {
    "think": _think,
    "model": _model,
    "system": _system,
    "retry": _retry,
    "new": _new,
    "save": _save,
    "usage": _usage,
    "tools": _tools,
    "help": _help,
    "exit": _exit,
    "quit": _exit,
}
#: What Tab completes at the start of the prompt.
NAMES = tuple(f"/{name}" for name in COMMANDS)
