"""`m2 config`: where the file is, what every setting is and why, and changing one key."""

from __future__ import annotations

from .._errors import M2Error
from ._common import load_config
from ._output import EXIT_OK, guarded, new_table, say, show, write, write_json


def show_path() -> int:
    """Print the config file's path; say on stderr when it does not exist yet."""
    return guarded(_path)


def show_settings(*, json_output: bool) -> int:
    """Print every key with its value and source, as a table or as one JSON object."""
    return guarded(lambda: _settings(json_output))


def set_setting(key: str, value: str) -> int:
    """Set `key` ("none" removes it), then print the value that now applies."""
    return guarded(lambda: _set(key, value))


def _path() -> int:
    from .._config import config_path

    path = config_path()
    write(f"{path}\n")
    if not path.exists():
        say("m2: the file does not exist yet; `m2 config set KEY VALUE` creates it.", dim=True)
    return EXIT_OK


def _settings(json_output: bool) -> int:
    from .._config import config_items

    config = load_config()
    items = config_items(config)
    if json_output:
        write_json({key: {"value": value, "source": source} for key, value, source in items})
        return EXIT_OK

    from rich.text import Text

    table = new_table()
    for header in ("key", "value", "source"):
        table.add_column(header)
    for key, value, source in items:
        table.add_row(key, _shown(value), Text(source, style="" if source == "file" else "dim"))
    show(table, Text(), Text(f"file: {config.path}", style="dim"))
    return EXIT_OK


def _set(key: str, value: str) -> int:
    from .._config import config_items, config_path, set_value

    try:
        config = set_value(key, value)
    except OSError as exc:
        # Only the write raises it: set_value turns a file it cannot read into a ConfigError.
        raise M2Error(
            f"cannot write the config file {config_path()}: {exc.strerror or exc}",
            hint="Check the folder's permissions, or point M2_HOME at a writable folder.",
        ) from None

    found = {name: (setting, source) for name, setting, source in config_items(config)}
    setting, source = found.get(key, (None, "default"))
    if source == "file":
        write(f"{key} = {_shown(setting)}\n")
    elif key in found:
        write(f"{key} unset; the default applies: {_shown(setting)}\n")
    else:
        write(f"{key} unset\n")
    return EXIT_OK


def _shown(value: object) -> str:
    # "none" is also what `m2 config set KEY none` takes to unset a key.
    return "none" if value is None else str(value)
