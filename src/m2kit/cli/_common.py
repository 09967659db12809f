"""What the `m2` commands share: click settings, the store option, settings precedence, a client.

Settings come from, in order: a flag, its environment variable, the config file, the built-in
default. Only click and light modules are imported here; the store and config load on use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

if TYPE_CHECKING:
    from .._client import Client
    from .._config import Config
    from .._store import Store
    from .._types import Notice

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_F = TypeVar("_F", bound=Callable[..., Any])


def db_option(command: _F) -> _F:
    """The `--db PATH` option: which store file to use."""
    return click.option(
        "--db",
        metavar="PATH",
        envvar="M2_DB",
        help="The conversation store (SQLite).  [default: in M2_HOME, else the user data folder]",
    )(command)


def logging_enabled(no_log: bool) -> bool:
    """Whether turns go to the store: not with --no-log, nor with M2_NO_LOG set to a true value."""
    flag = os.environ.get("M2_NO_LOG", "").strip().lower()
    return not no_log and flag in ("", "0", "false", "no", "off")


def to_continue(store: Store, cid: str | None, *, none: str, hint: str) -> str:
    """The full id of the stored conversation `--cid` names (a unique prefix, as `m2 logs`
    shows, will do), or of the latest one for `-c`. ConfigError when there is none: `none` and
    `hint` say so for `-c`."""
    from .._errors import ConfigError

    if not cid:
        latest = store.latest_conversation_id()
        if latest is None:
            raise ConfigError(none, hint=hint)
        return latest
    found = store.find_conversation(cid)
    if found is None:
        raise ConfigError(
            f"no conversation {cid!r} in {store.path}", hint="List them with `m2 logs`."
        )
    return found


def open_store(db: str | None) -> Store:
    """The store at `db`, or at the default path."""
    from .._store import Store, default_db_path

    return Store(db or default_db_path())


def load_config() -> Config:
    from .._config import load_config as load

    return load()


@dataclass(frozen=True)
class Settings:
    """What every command that talks to a model needs, after flag > env > config > default."""

    model: str | None  # None: the client's own default (M2_MODEL was already folded in)
    base_url: str | None
    api_key: str | None
    temperature: float
    top_p: float
    max_tokens: int | None
    retry_budget: float
    timeout: float
    profile: str | None

    def client(self, on_notice: Callable[[Notice], None]) -> Client:
        """A client with these settings; `on_notice` hears of its waits and dropped parameters."""
        from .._client import Client
        from .._retry import RetryPolicy

        return Client(
            self.model,
            self.base_url,
            self.api_key,
            timeout=self.timeout,
            retry=RetryPolicy(budget=self.retry_budget),
            on_notice=on_notice,
            profile=self.profile,
        )


class Given(Protocol):
    """What a command was given of the settings every command that talks to a model takes
    (`model_options`, `connection_options`); None means "not given"."""

    @property
    def model(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def api_key(self) -> str | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def retry_budget(self) -> float | None: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def profile(self) -> str | None: ...


def settings(given: Given) -> Settings:
    """Flag values (click has already read M2_MODEL and M2_BASE_URL into them) over the config
    file over the built-in defaults."""
    from .._request import DEFAULT_TEMPERATURE, DEFAULT_TIMEOUT, DEFAULT_TOP_P
    from .._retry import RetryPolicy

    config = load_config()
    return Settings(
        model=_first(given.model, config.model),
        base_url=_first(given.base_url, config.base_url),
        api_key=given.api_key,
        temperature=_or(DEFAULT_TEMPERATURE, given.temperature, config.temperature),
        top_p=_or(DEFAULT_TOP_P, given.top_p, config.top_p),
        max_tokens=_first(given.max_tokens, config.max_tokens),
        retry_budget=_or(RetryPolicy().budget, given.retry_budget, config.retry_budget),
        timeout=_or(DEFAULT_TIMEOUT, given.timeout, config.timeout),
        profile=given.profile,
    )


_V = TypeVar("_V")


def _first(*values: _V | None) -> _V | None:
    return next((value for value in values if value is not None), None)


def _or(default: _V, *values: _V | None) -> _V:
    found = _first(*values)
    return default if found is None else found


def model_options(*, system_help: str) -> Callable[[_F], _F]:
    """The options of every command that talks to a model: which model, where, with what key,
    the system prompt, the thinking profile and sampling."""
    from .._request import DEFAULT_BASE_URL, DEFAULT_MODEL, DEFAULT_TEMPERATURE, DEFAULT_TOP_P

    return _all(
        click.option(
            "-m",
            "--model",
            envvar="M2_MODEL",
            show_envvar=True,
            help="Model id, with an optional routing suffix: :fastest, :cheapest, :preferred or"
            f" :<provider>.  [default: {DEFAULT_MODEL}]",
        ),
        click.option(
            "--base-url",
            envvar="M2_BASE_URL",
            show_envvar=True,
            help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 for vLLM or SGLang."
            f"  [default: {DEFAULT_BASE_URL}]",
        ),
        click.option(
            "--api-key",
            help="API key. Default: M2_API_KEY; on Hugging Face, HF_TOKEN or `hf auth login`.",
        ),
        click.option("-s", "--system", help=system_help),
        click.option(
            "--profile",
            metavar="NAME",
            help="How the model writes its thinking, when the model name does not tell (a"
            " self-hosted server's served name): minimax-m2, default, ...",
        ),
        click.option(
            "--max-tokens",
            type=click.IntRange(min=1),
            help="Most tokens to generate, thinking included.",
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(min=0.0),
            help=f"Sampling temperature.  [default: {DEFAULT_TEMPERATURE}, or the config file's]",
        ),
        click.option(
            "--top-p",
            type=click.FloatRange(0.0, 1.0),
            help=f"Nucleus sampling.  [default: {DEFAULT_TOP_P}, or the config file's]",
        ),
        click.option(
            "--top-k",
            type=click.IntRange(min=1),
            help="Top-k sampling (self-hosted servers only: the router refuses it, so it is"
            " dropped).",
        ),
    )


def connection_options(command: _F) -> _F:
    """How long to retry and to wait: `--retry-budget`, `--timeout`."""
    from .._request import DEFAULT_TIMEOUT
    from .._retry import RetryPolicy

    return _all(
        click.option(
            "--retry-budget",
            type=click.FloatRange(min=0.0),
            metavar="SECONDS",
            help="How long to keep retrying rate limits, loading models and server errors."
            f"  [default: {RetryPolicy().budget:g}]",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            metavar="SECONDS",
            help="How long to wait for the server to say anything before giving up."
            f"  [default: {DEFAULT_TIMEOUT:g}]",
        ),
    )(command)


def tool_options(command: _F) -> _F:
    """The tools a model may call, for `m2 ask` and `m2 chat`: `-T/--tool`, `--functions`,
    `--max-steps`, `--yes`."""
    return _all(
        click.option(
            "-T",
            "--tool",
            "tools",
            multiple=True,
            metavar="NAME",
            help="Let the model call a built-in tool: read_file, list_dir (both in the current"
            " directory only), run_python, or all; repeat for several.",
        ),
        click.option(
            "--functions",
            metavar="FILE.py",
            help="Let the model call the tools in this Python file: its @tool objects, or else"
            " its public functions (each parameter needs a type hint).",
        ),
        click.option(
            "--max-steps",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="With tools: the most requests to the model before giving up.",
        ),
        click.option(
            "--yes", is_flag=True, help="With tools: run run_python's code without asking."
        ),
    )(command)


def _all(*decorators: Callable[[Any], Any]) -> Callable[[_F], _F]:
    """Apply click option decorators so that `--help` lists them in the order given."""

    def apply(command: _F) -> _F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply
