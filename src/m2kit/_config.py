"""The user's config file (TOML) and its known keys.

Which setting wins (flag > environment > this file > built-in default) is decided where the
settings are used: `m2kit.cli._common.settings`.

The file lives at `M2_HOME/config.toml` when `M2_HOME` is set, else at platformdirs'
`user_config_dir("m2kit")/config.toml`. It may hold:

```toml
model = "MiniMaxAI/MiniMax-M2:cheapest"
base_url = "https://router.huggingface.co/v1"
temperature = 1.0
top_p = 0.95
max_tokens = 4096
retry_budget = 120.0    # seconds
timeout = 120.0         # seconds

[credits]
monthly_usd = 0.10      # free accounts; PRO gets 2.00
warn_at = 0.8           # warn when the estimated spend passes this fraction

[prices.novita]         # USD per million tokens, overriding the catalogue's figures
input = 0.3
output = 1.2
```

platformdirs and the TOML libraries are imported only when a file is read or written.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError
from ._request import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_TEMPERATURE,
    DEFAULT_TIMEOUT,
    DEFAULT_TOP_P,
)
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


_FILE_NAME = "config.toml"
_PRICE_FIELDS = ("input", "output")
_UNSET = "none"


def m2_home() -> Path | None:
    """The folder named by `M2_HOME`, or None when it is unset or empty."""
    value = os.environ.get("M2_HOME", "").strip()
    return Path(value).expanduser() if value else None


def config_path() -> Path:
    """Where the config file is: `M2_HOME/config.toml`, else the platform's user config dir."""
    home = m2_home()
    if home is not None:
        return home / _FILE_NAME

    import platformdirs

    return Path(platformdirs.user_config_dir("m2kit")) / _FILE_NAME


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`.

    A reader sees the old file or the new one, never half of either; the folder is created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class _Key:
    kind: type
    expects: str
    builtin: object = None
    check: Callable[[float], bool] | None = None
    example: str = "1.0"


def _at_least(low: float) -> Callable[[float], bool]:
    return lambda value: value >= low


def _fraction(value: float) -> bool:
    return 0 <= value <= 1


_TEXT = "text (a string)"
_KEYS: dict[str, _Key] = {
    "model": _Key(str, _TEXT, DEFAULT_MODEL),
    "base_url": _Key(str, _TEXT, DEFAULT_BASE_URL),
    "temperature": _Key(float, "a number ≥ 0", DEFAULT_TEMPERATURE, _at_least(0)),
    "top_p": _Key(float, "a number from 0 to 1", DEFAULT_TOP_P, _fraction, "0.95"),
    "max_tokens": _Key(int, "a whole number ≥ 1", None, _at_least(1), "4096"),
    "retry_budget": _Key(float, "a number of seconds ≥ 0", RetryPolicy().budget, _at_least(0)),
    "timeout": _Key(float, "a number of seconds > 0", DEFAULT_TIMEOUT, lambda value: value > 0),
    "credits.monthly_usd": _Key(float, "a number of US dollars ≥ 0", 0.10, _at_least(0)),
    "credits.warn_at": _Key(float, "a fraction from 0 to 1", 0.8, _fraction, "0.8"),
}
_PRICE = _Key(float, "a price in USD per million tokens ≥ 0", None, _at_least(0))

#: The keys a config file may set, besides the `prices.<provider>.input|output` overrides.
CONFIG_KEYS = tuple(_KEYS)


@dataclass(frozen=True, slots=True)
class Config:
    """The settings from the config file, with the file's own defaults filled in.

    Keys whose built-in default lives elsewhere (model, base_url, sampling, retry_budget, timeout)
    are None when the file does not set them, so the caller can fall through to that default. The
    credit settings default here: `credits_monthly_usd` 0.10 (the free tier; PRO is 2.00) and
    `credits_warn_at` 0.8. `prices` maps a provider to its `input`/`output` price overrides in
    USD per million tokens. `path` is the file read, and `from_file` the keys it set.
    """

    model: str | None = None
    base_url: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    retry_budget: float | None = None
    timeout: float | None = None
    credits_monthly_usd: float = 0.10
    credits_warn_at: float = 0.8
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    path: Path | None = None
    from_file: frozenset[str] = frozenset()


def load_config(path: Path | None = None) -> Config:
    """The config in `path` (default: `config_path()`); a missing file gives the defaults.

    Raises `ConfigError`, naming the file, for a file that is not valid TOML, an unknown key, or a
    value of the wrong type or out of range.
    """
    path = path or config_path()
    return _from_document(_read(path), path)


def set_value(key: str, value_text: str, path: Path | None = None) -> Config:
    """Set `key` to `value_text`, parsed by the key's type, and write the file back atomically.

    `"0.7"` becomes a float for `temperature`, `"4096"` an int for `max_tokens`; `"none"` removes
    the key, so its default applies again. Price overrides are set as `prices.<provider>.input`
    or `.output`. Other keys are kept, but comments in a hand-edited file are not (tomli_w
    writes plain TOML). Returns the new config; nothing is written when the result would not load.
    """
    import tomli_w

    path = path or config_path()
    document = _read(path)
    spec = _spec_for(key)

    text = value_text.strip()
    if text.lower() == _UNSET:
        _remove(document, key)
    else:
        _put(document, key, _parse_text(key, spec, text))

    config = _from_document(document, path)
    write_atomic(path, tomli_w.dumps(document).encode())
    return config


def config_items(config: Config) -> list[tuple[str, object, str]]:
    """`(key, value, source)` for every known key, then each price override, for `m2 config show`.

    `source` is "file" when the config file sets the key, else "default", with the built-in
    default as the value (None for `max_tokens`: the server decides).
    """
    items: list[tuple[str, object, str]] = []
    for key, spec in _KEYS.items():
        if key in config.from_file:
            items.append((key, getattr(config, _field_name(key)), "file"))
        else:
            items.append((key, spec.builtin, "default"))

    for provider, offer in sorted(config.prices.items()):
        items.extend((f"prices.{provider}.{name}", price, "file") for name, price in offer.items())
    return items


def _read(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None

    try:
        return _toml_loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        # tomllib's TOMLDecodeError is a ValueError and names the line and column.
        raise ConfigError(
            f"the config file {path} is not valid TOML: {exc}",
            hint=f"Fix or delete {path}.",
        ) from None


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        # Only installed on Python 3.10, where mypy also checks this branch.
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    document: dict[str, Any] = tomllib.loads(text)
    return document


def _from_document(document: Mapping[str, Any], path: Path) -> Config:
    values: dict[str, Any] = {}
    prices: dict[str, dict[str, float]] = {}

    for name, value in document.items():
        if name == "prices":
            prices = _checked_prices(value, path)
        elif name == "credits":
            if not isinstance(value, dict):
                raise _wrong_type(name, "a table ([credits])", value, path, table=True)
            for sub, sub_value in value.items():
                key = f"credits.{sub}"
                values[key] = _checked(key, _spec_for(key, path), sub_value, path)
        else:
            values[name] = _checked(name, _spec_for(name, path), value, path)

    return Config(
        **{_field_name(key): value for key, value in values.items()},
        prices=prices,
        path=path,
        from_file=frozenset(values),
    )


def _checked_prices(value: object, path: Path) -> dict[str, dict[str, float]]:
    if not isinstance(value, dict):
        raise _wrong_type(
            "prices", "a table of providers ([prices.<provider>])", value, path, table=True
        )

    prices: dict[str, dict[str, float]] = {}
    for provider, offer in value.items():
        key = f"prices.{provider}"
        if not isinstance(offer, dict):
            raise _wrong_type(key, "a table with input and output prices", offer, path, table=True)
        prices[provider] = {}
        for name, price in offer.items():
            spec = _spec_for(f"{key}.{name}", path)
            prices[provider][name] = _checked(f"{key}.{name}", spec, price, path)
    return prices


def _checked(key: str, spec: _Key, value: object, path: Path | None) -> Any:
    if spec.kind is str:
        if not isinstance(value, str) or not value.strip():
            raise _wrong_type(key, f"non-empty {spec.expects}", value, path)
        return value.strip()

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type(key, spec.expects, value, path)
    if spec.kind is int and not isinstance(value, int):
        raise _wrong_type(key, spec.expects, value, path)

    number = float(value)
    if not math.isfinite(number) or (spec.check is not None and not spec.check(number)):
        raise _wrong_type(key, spec.expects, value, path)
    return value if spec.kind is int else number


def _wrong_type(
    key: str, expects: str, value: object, path: Path | None, *, table: bool = False
) -> ConfigError:
    where = f" in {path}" if path is not None else ""
    if table:
        hint = f"Edit {path}: make {key} a TOML table, or remove it."
    else:
        hint = (
            f"Fix it with `m2 config set {key} VALUE`, or unset it with `m2 config set {key} none`."
        )
    return ConfigError(f"{key}{where} is {_describe(value)}, but it takes {expects}", hint=hint)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float, str)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _spec_for(key: str, path: Path | None = None) -> _Key:
    if key in _KEYS:
        return _KEYS[key]

    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "prices" and parts[1] and parts[2] in _PRICE_FIELDS:
        return _PRICE

    where = f" in {path}" if path is not None else ""
    known = ", ".join((*_KEYS, "prices.<provider>.input", "prices.<provider>.output"))
    close = get_close_matches(key, _KEYS, n=1)
    guess = f"Did you mean {close[0]}? " if close else ""
    raise ConfigError(f"unknown config key {key!r}{where}", hint=f"{guess}Known keys: {known}.")


def _parse_text(key: str, spec: _Key, text: str) -> object:
    value: object = text
    if spec.kind is not str:
        try:
            value = spec.kind(text)
        except ValueError:
            raise ConfigError(
                f"{key} takes {spec.expects}, not {text!r}",
                hint=f"For example: m2 config set {key} {spec.example}",
            ) from None
    return _checked(key, spec, value, None)


def _put(document: dict[str, Any], key: str, value: object) -> None:
    *tables, name = key.split(".")
    table = document
    for part in tables:
        inner = table.get(part)
        if not isinstance(inner, dict):
            inner = table[part] = {}
        table = inner
    table[name] = value


def _remove(table: dict[str, Any], key: str) -> None:
    first, _, rest = key.partition(".")
    if not rest:
        table.pop(first, None)
        return

    inner = table.get(first)
    if isinstance(inner, dict):
        _remove(inner, rest)
        # An emptied [credits] or [prices.<provider>] table would stay behind as a bare header.
        if not inner:
            del table[first]


def _field_name(key: str) -> str:
    return key.replace(".", "_")
