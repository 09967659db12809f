"""The `m2` command.

Built on click rather than typer: typer builds pydantic type adapters for every parameter at each
start, which measured here cost about 0.15 s per `m2` run. Commands are found by name and
imported only when used; a command's work imports the client only when it runs.
"""

from __future__ import annotations

import importlib

import click

from .._version import __version__
from ._common import CONTEXT

# name -> "module:attribute" of each command, in the order `m2 --help` lists them.
COMMANDS = {
    "ask": "m2kit.cli._cmd_ask:ask",
    "chat": "m2kit.cli._cmd_chat:chat",
    "logs": "m2kit.cli._cmd_logs:logs",
    "usage": "m2kit.cli._cmd_usage:usage",
    "models": "m2kit.cli._cmd_models:models",
    "config": "m2kit.cli._cmd_config:config",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when asked for, so `m2 ask` loads only `ask`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="m2", message="%(prog)s %(version)s")
def app() -> None:
    """MiniMax-M2 and other open chat models through Hugging Face Inference Providers.

    Set HF_TOKEN (or run `hf auth login`), then:  m2 ask "Write a haiku about rain."
    """


def main() -> None:
    """The `m2` entry point."""
    _warnings_to_stderr()
    app()


def _warnings_to_stderr() -> None:
    """The library's warnings (a store that failed to record a turn, say) as `m2:` lines;
    without this, Python's last-resort handler prints them bare."""
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("m2: warning: %(message)s"))
    logger = logging.getLogger("m2kit")
    logger.addHandler(handler)
    logger.propagate = False
