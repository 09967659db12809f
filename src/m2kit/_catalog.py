"""The router's model catalogue (`GET /v1/models`): typed, cached on disk, searchable.

The catalogue lists each model's providers with their status, context length, prices and the
latency and throughput of the router's latest validation probe; any of those figures may be
missing. `load_catalog` keeps the raw payload on disk for an hour, keyed by base URL, so
`m2 models` can answer without the network. httpx2 and platformdirs are imported only when used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ._auth import is_huggingface_url
from ._config import m2_home, write_atomic
from ._errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    error_from_response,
    redact,
    request_id_from,
)
from ._request import DEFAULT_CONNECT_TIMEOUT
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

logger = logging.getLogger("m2kit")

#: Seconds the catalogue is read from the disk cache before it is fetched again.
DEFAULT_MAX_AGE = 3600.0
#: Seconds without a byte from the server before a catalogue fetch gives up.
DEFAULT_CATALOG_TIMEOUT = 30.0

_CACHE_VERSION = 1
_LIVE = "live"

Policy = Literal["fastest", "cheapest"]
# What each policy compares, and which end of it wins.
_POLICY_FIGURES = {"fastest": ("throughput", "highest"), "cheapest": ("output price", "lowest")}


@dataclass(frozen=True, slots=True)
class ProviderOffer:
    """One provider serving a model, with the figures the router published for it.

    Prices are in USD per million tokens, `first_token_latency_ms` in milliseconds, `throughput`
    in tokens per second. Every figure and flag is None when the catalogue leaves it out or sends
    something that is not a sensible value of its type.
    """

    provider: str
    status: str | None = None
    context_length: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    first_token_latency_ms: float | None = None
    throughput: float | None = None
    supports_tools: bool | None = None
    supports_structured_output: bool | None = None
    is_model_author: bool | None = None

    @property
    def is_live(self) -> bool:
        """Whether the router's latest probe found the provider working (status "live")."""
        return self.status == _LIVE


@dataclass(frozen=True, slots=True)
class Model:
    """One model of the catalogue. `raw` is the entry exactly as the server sent it."""

    id: str
    owned_by: str | None = None
    providers: tuple[ProviderOffer, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class Catalog(NamedTuple):
    """What `load_catalog` returns: the models, when they were fetched (Unix time), and whether
    they came from the disk cache."""

    models: list[Model]
    fetched_at: float
    from_cache: bool


@dataclass(frozen=True, slots=True)
class Pick:
    """Which provider a routing policy would choose, by the catalogue's figures.

    `offer` is None when no provider qualifies. `figure` is the number it won on: tokens per
    second for "fastest", USD per million output tokens for "cheapest". `reason` says why, or
    why none, in a phrase fit to show.
    """

    policy: Policy
    offer: ProviderOffer | None
    figure: float | None
    reason: str


def parse_catalog(payload: object) -> list[Model]:
    """The models in a `GET /v1/models` payload (`{"data": [...]}`).

    Entries without a string `id`, and offers without a string `provider`, are skipped; any other
    odd value becomes None. Never raises.
    """
    entries = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        return []
    return [model for entry in entries if (model := _model(entry)) is not None]


def fetch_catalog(
    base_url: str,
    token: str | None,
    *,
    timeout: float = DEFAULT_CATALOG_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> list[Model]:
    """Fetch `GET {base_url}/models` and parse it.

    `token` goes in the Authorization header when given; pass what `m2kit._auth.resolve_token`
    resolved for this URL, so the Hugging Face token only reaches Hugging Face. `timeout` bounds
    each wait for the server in seconds (default 30), `connect_timeout` the connection (15).
    Raises `APIError` (by status, as the client does) for an error status or a body that is not a
    model list, and `ConnectionFailed` when the server cannot be reached.
    """
    return parse_catalog(_fetch_payload(base_url, token, timeout, connect_timeout))


def default_cache_dir() -> Path:
    """`M2_HOME/cache` when `M2_HOME` is set, else the platform's user cache dir for m2kit."""
    home = m2_home()
    if home is not None:
        return home / "cache"

    import platformdirs

    return Path(platformdirs.user_cache_dir("m2kit"))


def load_catalog(
    base_url: str,
    token: str | None,
    *,
    cache_dir: Path | None = None,
    max_age: float = DEFAULT_MAX_AGE,
    refresh: bool = False,
    timeout: float = DEFAULT_CATALOG_TIMEOUT,
    now: Callable[[], float] = time.time,
) -> Catalog:
    """The catalogue from the disk cache when it is younger than `max_age` seconds, else fetched.

    `cache_dir` defaults to `default_cache_dir()`; one file per base URL, holding the raw
    payload and the fetch time, never the token. `refresh=True` fetches whatever the cache holds.
    A cache file that cannot be read or parsed is ignored and replaced; one that cannot be written
    is logged and skipped, since the catalogue itself was fetched. Errors are `fetch_catalog`'s.
    """
    path = _cache_file(cache_dir or default_cache_dir(), base_url)
    if not refresh:
        cached = _read_cache(path)
        if cached is not None:
            fetched_at, payload = cached
            if 0 <= now() - fetched_at < max_age:
                return Catalog(parse_catalog(payload), fetched_at, from_cache=True)

    payload = _fetch_payload(base_url, token, timeout, DEFAULT_CONNECT_TIMEOUT)
    fetched_at = now()
    _write_cache(path, fetched_at, payload, token)
    return Catalog(parse_catalog(payload), fetched_at, from_cache=False)


def search(models: Iterable[Model], query: str) -> list[Model]:
    """The models whose id contains `query`, ignoring case, in catalogue order; all for ""."""
    needle = query.strip().casefold()
    return [model for model in models if needle in model.id.casefold()]


def find_model(models: Iterable[Model], model_id: str) -> Model | None:
    """The model whose id is `model_id`, ignoring case, or None."""
    wanted = model_id.strip().casefold()
    return next((model for model in models if model.id.casefold() == wanted), None)


def pick(model: Model, policy: Policy) -> Pick:
    """Which live provider `policy` would choose for `model`, from the catalogue's figures.

    - "fastest": the highest `throughput`; a lower first-token latency breaks ties.
    - "cheapest": the lowest `output_price`; a lower `input_price` breaks ties.
    Providers whose status is not "live", or that lack the figure, are skipped; the rest of the
    ties go to catalogue order. This is an estimate: the router decides on its own, more recent
    probes, and skips providers the user disabled at hf.co/settings/inference-providers.
    """
    if policy not in _POLICY_FIGURES:
        raise ConfigError(
            f"cannot estimate the routing policy {policy!r}",
            hint="Only :fastest and :cheapest follow the catalogue's figures.",
        )

    live = [offer for offer in model.providers if offer.is_live]
    rated = _rated(live, policy)
    what, extreme = _POLICY_FIGURES[policy]
    if not rated:
        return Pick(policy, None, None, _none_reason(model, live, what))

    # min() keeps the first of equals, so the remaining ties go to catalogue order.
    _, figure, offer = min(rated, key=lambda item: item[0])
    among = f"among {len(rated)} live provider{'s' if len(rated) != 1 else ''} reporting it"
    skipped = len(model.providers) - len(rated)
    reason = f"{extreme} {what} {among}" + (f" ({skipped} skipped)" if skipped else "")
    return Pick(policy, offer, figure, reason)


def _rated(
    offers: list[ProviderOffer], policy: Policy
) -> list[tuple[tuple[float, float], float, ProviderOffer]]:
    """(sort key, figure, offer) for each offer that has the policy's figure; lowest key wins."""
    if policy == "fastest":
        return [
            ((-offer.throughput, _or_inf(offer.first_token_latency_ms)), offer.throughput, offer)
            for offer in offers
            if offer.throughput is not None
        ]
    return [
        ((offer.output_price, _or_inf(offer.input_price)), offer.output_price, offer)
        for offer in offers
        if offer.output_price is not None
    ]


def _none_reason(model: Model, live: list[ProviderOffer], what: str) -> str:
    if not model.providers:
        return "the catalogue lists no provider for this model"
    if not live:
        return "no provider is live"
    return f"no live provider reports its {what}"


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _model(entry: object) -> Model | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None

    offers = entry.get("providers")
    providers = tuple(
        offer
        for item in (offers if isinstance(offers, list) else [])
        if (offer := _offer(item)) is not None
    )
    return Model(entry["id"], _text(entry.get("owned_by")), providers, raw=entry)


def _offer(item: object) -> ProviderOffer | None:
    if not isinstance(item, dict) or not isinstance(item.get("provider"), str):
        return None

    pricing = item.get("pricing")
    prices = pricing if isinstance(pricing, dict) else {}
    context = _number(item.get("context_length"))
    return ProviderOffer(
        provider=item["provider"],
        status=_text(item.get("status")),
        context_length=int(context) if context is not None and context.is_integer() else None,
        input_price=_number(prices.get("input")),
        output_price=_number(prices.get("output")),
        first_token_latency_ms=_number(item.get("first_token_latency_ms")),
        throughput=_number(item.get("throughput")),
        supports_tools=_flag(item.get("supports_tools")),
        supports_structured_output=_flag(item.get("supports_structured_output")),
        is_model_author=_flag(item.get("is_model_author")),
    )


def _number(value: object) -> float | None:
    # A negative or infinite price or speed would win a policy it has no right to win.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _fetch_payload(
    base_url: str, token: str | None, timeout: float, connect_timeout: float
) -> dict[str, Any]:
    import httpx2

    # The client's own check, so a bad URL fails here with the same message as in `m2 ask`.
    from ._client import _checked_base_url

    url = _checked_base_url(base_url) + "/models"
    headers = {"Accept": "application/json", "User-Agent": f"m2kit/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    started = time.monotonic()
    try:
        # Redirects are not followed, so the token never travels to another host.
        with httpx2.Client(
            timeout=httpx2.Timeout(timeout, connect=connect_timeout), follow_redirects=False
        ) as http:
            response = http.get(url, headers=headers)
    except httpx2.RequestError as exc:
        raise _connection_failed(url, exc, token) from exc

    host = httpx2.URL(url).host
    logger.info("GET %s %s %.2fs", host, response.status_code, time.monotonic() - started)
    if response.status_code >= 300:
        raise _status_error(response.status_code, response.headers, response.text, url, token)
    return _payload(response.status_code, response.headers, response.content, url, token)


def _connection_failed(url: str, exc: Exception, token: str | None) -> ConnectionFailed:
    import httpx2

    detail = redact(str(exc) or type(exc).__name__, token)
    reason = "could not connect"
    if isinstance(exc, httpx2.TimeoutException) and not isinstance(exc, httpx2.ConnectTimeout):
        reason = "no reply within the timeout"
    return ConnectionFailed(
        f"could not get the model list from {httpx2.URL(url).host}: {detail}", reason=reason
    )


def _status_error(
    status: int, headers: Mapping[str, str], text: str, url: str, token: str | None
) -> APIError:
    error = error_from_response(status, headers, text, secret=token)
    if 300 <= status < 400:
        where = headers.get("location") or "another address"
        error.hint = f"The server redirects to {where}: use that address as the base URL."
    elif isinstance(error, AuthenticationError) and not is_huggingface_url(url):
        error.hint = (
            "The server wants a key: pass --api-key (api_key= in Python) or set M2_API_KEY."
        )
    return error


def _payload(
    status: int, headers: Mapping[str, str], body: bytes, url: str, token: str | None
) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return payload

    text = redact(body.decode("utf-8", errors="replace"), token)
    raise APIError(
        f"the answer to GET {url} is not a model list",
        status=status,
        request_id=request_id_from(headers),
        body=text[:1000],
        headers=headers,
        hint="Check the base URL (--base-url / M2_BASE_URL): it usually ends in /v1.",
    )


def _cache_file(cache_dir: Path, base_url: str) -> Path:
    # A hash, so that any URL makes a safe file name, and credentials in a URL stay out of it.
    digest = hashlib.sha256(base_url.strip().rstrip("/").encode()).hexdigest()[:24]
    return cache_dir / f"models-{digest}.json"


def _read_cache(path: Path) -> tuple[float, dict[str, Any]] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None

    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return None
    fetched_at, payload = data.get("fetched_at"), data.get("payload")
    if isinstance(fetched_at, bool) or not isinstance(fetched_at, (int, float)):
        return None
    if not math.isfinite(fetched_at) or not isinstance(payload, dict):
        return None
    return float(fetched_at), payload


def _write_cache(path: Path, fetched_at: float, payload: dict[str, Any], token: str | None) -> None:
    data = json.dumps(
        {"version": _CACHE_VERSION, "fetched_at": fetched_at, "payload": payload},
        ensure_ascii=False,
    )
    # A server that echoed the token back must not get it written to disk.
    if token and token in data:
        logger.warning("not caching the model list: it contains the API token")
        return

    try:
        write_atomic(path, data.encode())
    except OSError as exc:
        logger.warning("could not cache the model list in %s: %s", path.parent, exc)
