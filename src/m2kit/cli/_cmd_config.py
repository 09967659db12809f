"""The `m2 config` commands' options; their work is in `_configure`, imported when they run."""

from __future__ import annotations

import click

from ._common import CONTEXT


@click.group(context_settings=CONTEXT)
def config() -> None:
    """Show or change the config file.

    It holds the default model, base URL, sampling and credit limits. A flag wins over its
    environment variable, which wins over the config file, which wins over the built-in default.

    \b
    Examples:
      m2 config set model MiniMaxAI/MiniMax-M2:cheapest
      m2 config set credits.monthly_usd 2.00
      m2 config unset temperature
      m2 config show
    """


@config.command(context_settings=CONTEXT)
def path() -> None:
    """Print where the config file is.

    M2_HOME/config.toml when M2_HOME is set, else config.toml in the user config folder.
    """
    from ._configure import show_path

    raise SystemExit(show_path())


@config.command(context_settings=CONTEXT)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help='Print one JSON object: {"KEY": {"value": ..., "source": "file" or "default"}}.',
)
def show(json_output: bool) -> None:
    """Print every setting with its value and source.

    The source is "file" when the config file sets the key, else "default".
    """
    from ._configure import show_settings

    raise SystemExit(show_settings(json_output=json_output))


@config.command(name="set", context_settings=CONTEXT)
@click.argument("key")
@click.argument("value")
def set_(key: str, value: str) -> None:
    """Set KEY to VALUE in the config file; VALUE "none" removes the key.

    `m2 config show` lists the keys; prices.PROVIDER.input and prices.PROVIDER.output override
    a provider's prices in USD per million tokens. VALUE is checked before the file is written.

    \b
    Examples:
      m2 config set temperature 0.7
      m2 config set prices.novita.output 1.2
    """
    from ._configure import set_setting
    from ._output import clean_text

    raise SystemExit(set_setting(clean_text(key), clean_text(value)))


@config.command(context_settings=CONTEXT)
@click.argument("key")
def unset(key: str) -> None:
    """Remove KEY from the config file, so its default applies again.

    The same as `m2 config set KEY none`.
    """
    from ._configure import set_setting
    from ._output import clean_text

    raise SystemExit(set_setting(clean_text(key), "none"))
