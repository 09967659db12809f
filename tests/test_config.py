"""Tests for m2kit._config: the config file, its keys and types, and the precedence rule."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from m2kit import ConfigError
from m2kit._config import (
    CONFIG_KEYS,
    Config,
    config_items,
    config_path,
    load_config,
    set_value,
    write_atomic,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "config.toml"


def read_toml(path: Path) -> dict[str, object]:
    document: dict[str, object] = tomllib.loads(path.read_text(encoding="utf-8"))
    return document


def test_path_is_in_the_platform_config_dir(isolated_user: Path) -> None:
    """If M2_HOME is not set, then the file is config.toml in the user config dir for m2kit."""
    expected = Path(platformdirs.user_config_dir("m2kit")) / "config.toml"

    assert config_path() == expected
    assert isolated_user in expected.parents


def test_path_follows_m2_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """If M2_HOME is set, then the file is M2_HOME/config.toml."""
    monkeypatch.setenv("M2_HOME", str(tmp_path / "m2"))
    assert config_path() == tmp_path / "m2" / "config.toml"


def test_blank_m2_home_is_unset(monkeypatch: pytest.MonkeyPatch, isolated_user: Path) -> None:
    """If M2_HOME is blank, then the platform config dir is used."""
    monkeypatch.setenv("M2_HOME", "  ")
    assert config_path().parent == Path(platformdirs.user_config_dir("m2kit"))


def test_missing_file_gives_defaults(path: Path) -> None:
    """If the file does not exist, then every setting is its default and nothing is created."""
    config = load_config(path)

    assert config == Config(path=path)
    assert config.credits_monthly_usd == 0.10
    assert config.credits_warn_at == 0.8
    assert config.model is None
    assert not path.exists()


def test_load_uses_config_path_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """If no path is given, then load_config and set_value use config_path()."""
    monkeypatch.setenv("M2_HOME", str(tmp_path / "m2"))
    set_value("model", "MiniMaxAI/MiniMax-M2:novita")

    assert load_config().model == "MiniMaxAI/MiniMax-M2:novita"
    assert (tmp_path / "m2" / "config.toml").exists()


def test_file_values_are_typed(path: Path) -> None:
    """If the file sets every key, then each comes back with its type; integers become floats."""
    path.parent.mkdir()
    path.write_text(
        'model = "MiniMaxAI/MiniMax-M2:cheapest"\n'
        'base_url = "http://localhost:8000/v1"\n'
        "temperature = 1\n"
        "top_p = 0.9\n"
        "max_tokens = 4096\n"
        "retry_budget = 30\n"
        "timeout = 60.5\n"
        "[credits]\n"
        "monthly_usd = 2.0\n"
        "warn_at = 0.5\n"
        "[prices.novita]\n"
        "input = 0.3\n"
        "output = 1\n",
        encoding="utf-8",
    )

    config = load_config(path)

    assert config.model == "MiniMaxAI/MiniMax-M2:cheapest"
    assert config.base_url == "http://localhost:8000/v1"
    assert config.temperature == 1.0
    assert isinstance(config.temperature, float)
    assert config.top_p == 0.9
    assert config.max_tokens == 4096
    assert isinstance(config.max_tokens, int)
    assert config.retry_budget == 30.0
    assert config.timeout == 60.5
    assert config.credits_monthly_usd == 2.0
    assert config.credits_warn_at == 0.5
    assert config.prices == {"novita": {"input": 0.3, "output": 1.0}}
    assert config.from_file == set(CONFIG_KEYS)


@pytest.mark.parametrize(
    ("text", "key", "expects"),
    [
        ('temperature = "hot"\n', "temperature", "a number"),
        ("temperature = true\n", "temperature", "a number"),
        ("max_tokens = 1.5\n", "max_tokens", "a whole number"),
        ("top_p = 1.5\n", "top_p", "a number from 0 to 1"),
        ("timeout = 0\n", "timeout", "seconds > 0"),
        ("model = 3\n", "model", "text"),
        ('model = ""\n', "model", "non-empty text"),
        ("credits = 2\n", "credits", "a table"),
        ("[credits]\nwarn_at = 80\n", "credits.warn_at", "a fraction from 0 to 1"),
        ("[credits]\nmonthly_usd = -1\n", "credits.monthly_usd", "US dollars"),
        ('[prices.novita]\ninput = "cheap"\n', "prices.novita.input", "USD per million tokens"),
        ("prices = 1\n", "prices", "a table of providers"),
        ("[prices]\nnovita = 1\n", "prices.novita", "input and output prices"),
    ],
)
def test_wrong_type_names_key_file_and_type(path: Path, text: str, key: str, expects: str) -> None:
    """If a value has the wrong type or range, then ConfigError names the key, file and type."""
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert key in message
    assert str(path) in message
    assert expects in message
    assert key in caught.value.hint


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('modle = "x"\n', "modle"),
        ("[credits]\nmonthly = 1.0\n", "credits.monthly"),
        ("[prices.novita]\ncached = 0.1\n", "prices.novita.cached"),
        ("[sampling]\ntemperature = 1.0\n", "sampling"),
    ],
)
def test_unknown_key_is_refused(path: Path, text: str, key: str) -> None:
    """If the file holds an unknown key, then ConfigError names it and the file."""
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert repr(key) in str(caught.value)
    assert str(path) in str(caught.value)
    assert "Known keys" in caught.value.hint


def test_unknown_key_suggests_the_close_one(path: Path) -> None:
    """If a key is misspelt, then the hint suggests the known key it resembles."""
    with pytest.raises(ConfigError) as caught:
        set_value("temprature", "0.7", path)

    assert "Did you mean temperature?" in caught.value.hint
    assert not path.exists()


def test_invalid_toml_names_the_file(path: Path) -> None:
    """If the file is not valid TOML, then ConfigError names the file and the parser's complaint."""
    path.parent.mkdir()
    path.write_text("model = \n", encoding="utf-8")

    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_config(path)

    assert str(path) in str(caught.value)


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    """If the config path cannot be read (a folder), then ConfigError says so instead of OSError."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


def test_set_value_round_trips_typed_values(path: Path) -> None:
    """If keys are set from text, then the file holds them typed and load_config reads them back."""
    set_value("temperature", "0.7", path)
    set_value("max_tokens", " 2048 ", path)
    set_value("model", "MiniMaxAI/MiniMax-M2:novita", path)
    set_value("credits.monthly_usd", "2.00", path)
    config = set_value("prices.fireworks-ai.output", "1.2", path)

    assert read_toml(path) == {
        "temperature": 0.7,
        "max_tokens": 2048,
        "model": "MiniMaxAI/MiniMax-M2:novita",
        "credits": {"monthly_usd": 2.0},
        "prices": {"fireworks-ai": {"output": 1.2}},
    }
    assert load_config(path) == config
    assert config.temperature == 0.7
    assert config.max_tokens == 2048
    assert config.prices == {"fireworks-ai": {"output": 1.2}}


def test_set_value_keeps_other_keys(path: Path) -> None:
    """If one key is set, then every other key in the file is kept as it was."""
    path.parent.mkdir()
    path.write_text(
        'model = "MiniMaxAI/MiniMax-M2"\n[credits]\nwarn_at = 0.9\n[prices.novita]\ninput = 0.3\n',
        encoding="utf-8",
    )

    set_value("top_p", "0.95", path)

    assert read_toml(path) == {
        "model": "MiniMaxAI/MiniMax-M2",
        "top_p": 0.95,
        "credits": {"warn_at": 0.9},
        "prices": {"novita": {"input": 0.3}},
    }


def test_none_unsets_a_key_and_its_empty_table(path: Path) -> None:
    """If a key is set to "none", then it leaves the file, with any table it emptied."""
    set_value("credits.warn_at", "0.5", path)
    set_value("prices.novita.input", "0.3", path)
    set_value("timeout", "30", path)

    set_value("credits.warn_at", "none", path)
    config = set_value("prices.novita.input", "None", path)

    assert read_toml(path) == {"timeout": 30.0}
    assert config.credits_warn_at == 0.8
    assert config.prices == {}


def test_none_for_an_absent_key_changes_nothing(path: Path) -> None:
    """If an absent key is set to "none", then the file stays as it was."""
    set_value("model", "x/y", path)
    set_value("max_tokens", "none", path)

    assert read_toml(path) == {"model": "x/y"}


@pytest.mark.parametrize(
    ("key", "text", "expects"),
    [
        ("temperature", "warm", "a number"),
        ("max_tokens", "1e3", "a whole number"),
        ("max_tokens", "0", "≥ 1"),
        ("top_p", "2", "from 0 to 1"),
        ("temperature", "nan", "a number"),
        ("model", "  ", "non-empty text"),
    ],
)
def test_set_value_refuses_bad_text(path: Path, key: str, text: str, expects: str) -> None:
    """If the text does not parse as the key's type, then ConfigError; nothing is written."""
    set_value("model", "x/y", path)
    before = path.read_bytes()

    with pytest.raises(ConfigError, match=expects) as caught:
        set_value(key, text, path)

    assert key in str(caught.value)
    assert path.read_bytes() == before


def test_set_value_refuses_a_bare_price_table(path: Path) -> None:
    """If a price key names no field, then ConfigError lists the price keys."""
    with pytest.raises(ConfigError) as caught:
        set_value("prices.novita", "0.3", path)

    assert "prices.<provider>.input" in caught.value.hint


def test_set_value_does_not_write_a_broken_file(path: Path) -> None:
    """If another key in the file is invalid, then set_value refuses and leaves the file alone."""
    path.parent.mkdir()
    path.write_text('temperature = "hot"\n', encoding="utf-8")

    with pytest.raises(ConfigError, match="temperature"):
        set_value("model", "x/y", path)

    assert path.read_text(encoding="utf-8") == 'temperature = "hot"\n'


def test_set_value_can_repair_the_broken_key(path: Path) -> None:
    """If the invalid key is the one being set, then set_value replaces it."""
    path.parent.mkdir()
    path.write_text('temperature = "hot"\n', encoding="utf-8")

    assert set_value("temperature", "0.5", path).temperature == 0.5


def test_config_items_show_sources(path: Path) -> None:
    """If a key is in the file, then config_items says "file" for it, else "default"."""
    set_value("temperature", "0.5", path)
    set_value("prices.novita.output", "1.2", path)

    items = {key: (value, source) for key, value, source in config_items(load_config(path))}

    assert items["temperature"] == (0.5, "file")
    assert items["model"] == ("MiniMaxAI/MiniMax-M2", "default")
    assert items["base_url"] == ("https://router.huggingface.co/v1", "default")
    assert items["max_tokens"] == (None, "default")
    assert items["credits.monthly_usd"] == (0.10, "default")
    assert items["prices.novita.output"] == (1.2, "file")
    assert [key for key, _, _ in config_items(Config())] == list(CONFIG_KEYS)


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    """If a file is written twice, then it holds the last data and no temporary file is left."""
    target = tmp_path / "deep" / "file.json"

    write_atomic(target, b"one")
    write_atomic(target, b"two")

    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]
