"""Tests for m2kit._catalog: the router's model list, fetched from a real server and cached."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import pytest

from _server import Recorded, ScriptedServer, Step, error_step, json_step
from m2kit import (
    APIError,
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    ModelNotFoundError,
    ServerError,
)
from m2kit._catalog import (
    Model,
    ProviderOffer,
    default_cache_dir,
    fetch_catalog,
    find_model,
    load_catalog,
    parse_catalog,
    pick,
    search,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from m2kit._catalog import Policy

TOKEN = "hf_catalogtoken123456"

# The shape of the router's GET /v1/models (REFERENCE.md): figures may be missing per provider.
PAYLOAD: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "MiniMaxAI/MiniMax-M2",
            "object": "model",
            "created": 1761000000,
            "owned_by": "MiniMaxAI",
            "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
            "providers": [
                {
                    "provider": "novita",
                    "status": "live",
                    "context_length": 204800,
                    "pricing": {"input": 0.3, "output": 1.2},
                    "supports_tools": True,
                    "supports_structured_output": False,
                    "first_token_latency_ms": 850,
                    "throughput": 62.5,
                    "is_model_author": False,
                },
                {
                    "provider": "fireworks-ai",
                    "status": "live",
                    "context_length": 196608,
                    "pricing": {"input": 0.3, "output": 1.2},
                    "supports_tools": True,
                    "supports_structured_output": True,
                    "first_token_latency_ms": 420,
                    "throughput": 140.1,
                    "is_model_author": False,
                },
                {
                    "provider": "together",
                    "status": "error",
                    "context_length": 196608,
                    "pricing": {"input": 0.1, "output": 0.5},
                    "supports_tools": True,
                    "supports_structured_output": True,
                    "throughput": 300.0,
                },
                {"provider": "nscale", "status": "live", "supports_tools": False},
            ],
        },
        {
            "id": "deepseek-ai/DeepSeek-R1",
            "object": "model",
            "created": 1737000000,
            "owned_by": "deepseek-ai",
            "providers": [
                {
                    "provider": "together",
                    "status": "live",
                    "context_length": 163840,
                    "pricing": {"input": 3.0, "output": 7.0},
                    "supports_tools": False,
                }
            ],
        },
        {"id": "Qwen/Qwen3-Coder-480B-A35B-Instruct", "object": "model", "providers": []},
    ],
}


class CatalogServer(ScriptedServer):
    """The scripted server, but GET /v1/models takes the next queued step when one is queued.

    The stock server answers that route only with a 200 JSON payload; these tests also need
    error statuses, non-JSON bodies and stalls there.
    """

    def _answer(self, request: Recorded) -> Step:
        if request.method == "GET" and request.path.split("?")[0] == "/v1/models":
            with self._lock:
                if self._steps:
                    self.requests.append(request)
                    return self._steps.popleft()
        return super()._answer(request)


@pytest.fixture(scope="module")
def _catalog_server() -> Iterator[CatalogServer]:
    server = CatalogServer()
    yield server
    server.close()


@pytest.fixture
def steps(_catalog_server: CatalogServer) -> Iterator[CatalogServer]:
    """A server whose GET /v1/models answers the steps queued on it, one per request."""
    _catalog_server.reset()
    yield _catalog_server
    _catalog_server.reset()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


class Clock:
    """A `now` for load_catalog that tests move by hand."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


def models_gets(server: ScriptedServer) -> list[Recorded]:
    return [r for r in server.requests if r.method == "GET" and r.path == "/v1/models"]


def test_fetch_parses_the_router_shape(server: ScriptedServer) -> None:
    """If the server lists models, then each comes back typed with its providers' figures."""
    server.models(PAYLOAD)

    models = fetch_catalog(server.base_url, TOKEN)

    assert [model.id for model in models] == [entry["id"] for entry in PAYLOAD["data"]]
    m2 = models[0]
    assert m2.owned_by == "MiniMaxAI"
    assert m2.raw == PAYLOAD["data"][0]
    assert m2.providers[0] == ProviderOffer(
        provider="novita",
        status="live",
        context_length=204800,
        input_price=0.3,
        output_price=1.2,
        first_token_latency_ms=850.0,
        throughput=62.5,
        supports_tools=True,
        supports_structured_output=False,
        is_model_author=False,
    )
    assert m2.providers[3] == ProviderOffer("nscale", "live", supports_tools=False)
    assert not m2.providers[2].is_live


def test_fetch_sends_the_token_it_is_given(server: ScriptedServer) -> None:
    """If a token is given, then the GET carries it as a bearer token, with our user agent."""
    server.models(PAYLOAD)

    fetch_catalog(server.base_url + "/", TOKEN)

    (request,) = models_gets(server)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"].startswith("m2kit/")


def test_fetch_without_token_sends_no_authorization(server: ScriptedServer) -> None:
    """If the token is None, then the request has no Authorization header at all."""
    server.models(PAYLOAD)

    fetch_catalog(server.base_url, None)

    (request,) = models_gets(server)
    assert "authorization" not in request.headers


def test_fetch_maps_401_and_redacts_the_token(steps: CatalogServer) -> None:
    """If the server answers 401 echoing the token, then AuthenticationError hides the token."""
    steps.queue(error_step(401, {"error": f"Invalid credentials in Authorization header {TOKEN}"}))

    with pytest.raises(AuthenticationError) as caught:
        fetch_catalog(steps.base_url, TOKEN)

    assert caught.value.status == 401
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.body
    # A self-hosted server wants its own key, not a Hugging Face token.
    assert "M2_API_KEY" in caught.value.hint


def test_fetch_maps_500(steps: CatalogServer) -> None:
    """If the server answers 500, then ServerError carries the server's message."""
    steps.queue(error_step(500, {"error": {"message": "upstream exploded"}}))

    with pytest.raises(ServerError, match="upstream exploded") as caught:
        fetch_catalog(steps.base_url, None)

    assert caught.value.status == 500


def test_fetch_maps_404_for_a_wrong_base_url(server: ScriptedServer) -> None:
    """If the base URL does not serve /models, then ModelNotFoundError says 404."""
    with pytest.raises(ModelNotFoundError) as caught:
        fetch_catalog(server.base_url.replace("/v1", "/v2"), None)

    assert caught.value.status == 404


def test_fetch_refuses_a_non_json_body(steps: CatalogServer) -> None:
    """If a 200 answer is not JSON, then APIError says it is not a model list and names the fix."""
    steps.queue(Step(headers={"content-type": "text/html"}, body=b"<html>welcome</html>"))

    with pytest.raises(APIError, match="not a model list") as caught:
        fetch_catalog(steps.base_url, None)

    assert caught.value.status == 200
    assert "--base-url" in caught.value.hint


def test_fetch_refuses_json_that_is_not_a_model_list(steps: CatalogServer) -> None:
    """If a 200 answer is JSON without a `data` list, then it is refused, not read as empty."""
    steps.queue(json_step({"models": []}))

    with pytest.raises(APIError, match="not a model list"):
        fetch_catalog(steps.base_url, None)


def test_fetch_does_not_follow_redirects(steps: CatalogServer) -> None:
    """If the server redirects, then the token is not carried along and the hint names the place."""
    steps.queue(Step(status=302, headers={"location": "https://elsewhere.example/v1/models"}))

    with pytest.raises(APIError) as caught:
        fetch_catalog(steps.base_url, TOKEN)

    assert caught.value.status == 302
    assert "elsewhere.example" in caught.value.hint
    assert len(steps.requests) == 1


def test_fetch_stall_is_a_connection_failure(steps: CatalogServer) -> None:
    """If the server says nothing within the timeout, then ConnectionFailed says so."""
    steps.queue(Step(delay=1.0, body=b"{}"))

    with pytest.raises(ConnectionFailed) as caught:
        fetch_catalog(steps.base_url, None, timeout=0.2)

    assert caught.value.reason == "no reply within the timeout"


def test_fetch_unreachable_server_is_a_connection_failure() -> None:
    """If nothing listens at the base URL, then ConnectionFailed, not an httpx2 error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ConnectionFailed, match="could not get the model list"):
        fetch_catalog(f"http://127.0.0.1:{port}/v1", TOKEN)


def test_fetch_refuses_a_bad_base_url() -> None:
    """If the base URL is not an http(s) URL, then ConfigError, before any connection."""
    with pytest.raises(ConfigError, match="base URL"):
        fetch_catalog("localhost:8000/v1", None)


def test_parse_turns_odd_values_into_none() -> None:
    """If fields have odd types or values, then they become None; nameless entries are skipped."""
    payload = {
        "data": [
            {"id": 7},
            "not a model",
            {
                "id": "odd/model",
                "owned_by": ["x"],
                "providers": [
                    {"status": "live"},
                    {
                        "provider": "odd",
                        "status": 1,
                        "context_length": 1.5,
                        "pricing": {"input": "0.3", "output": -1},
                        "first_token_latency_ms": True,
                        "throughput": float("nan"),
                        "supports_tools": "yes",
                        "supports_structured_output": None,
                        "is_model_author": 0,
                    },
                    {"provider": "whole", "context_length": 131072.0, "pricing": [1, 2]},
                    {"provider": "huge", "throughput": 10**400},
                ],
            },
            {"id": "no/providers", "providers": {"provider": "x"}},
        ]
    }

    odd_model, bare = parse_catalog(payload)

    assert odd_model.owned_by is None
    assert odd_model.providers == (
        ProviderOffer("odd"),
        ProviderOffer("whole", context_length=131072),
        ProviderOffer("huge"),
    )
    assert bare.providers == ()


@pytest.mark.parametrize("payload", [None, [], "text", {"data": {}}, {"data": None}])
def test_parse_of_a_shapeless_payload_is_empty(payload: object) -> None:
    """If the payload has no `data` list, then parse_catalog returns no models."""
    assert parse_catalog(payload) == []


def test_cache_is_used_within_max_age(server: ScriptedServer, cache: Path) -> None:
    """If the cache is younger than max_age, then the catalogue comes from disk, not the server."""
    server.models(PAYLOAD)
    clock = Clock()

    first = load_catalog(server.base_url, TOKEN, cache_dir=cache, now=clock)
    clock.time += 3599
    second = load_catalog(server.base_url, TOKEN, cache_dir=cache, now=clock)

    assert not first.from_cache
    assert second.from_cache
    assert second.fetched_at == first.fetched_at == 1_750_000_000.0
    assert second.models == first.models
    assert len(models_gets(server)) == 1


def test_cache_expires_after_max_age(server: ScriptedServer, cache: Path) -> None:
    """If the cache is max_age old, then the catalogue is fetched again and the cache renewed."""
    server.models(PAYLOAD)
    clock = Clock()
    load_catalog(server.base_url, None, cache_dir=cache, max_age=60, now=clock)

    clock.time += 60
    again = load_catalog(server.base_url, None, cache_dir=cache, max_age=60, now=clock)
    clock.time += 1
    cached = load_catalog(server.base_url, None, cache_dir=cache, max_age=60, now=clock)

    assert not again.from_cache
    assert cached.from_cache
    assert cached.fetched_at == again.fetched_at
    assert len(models_gets(server)) == 2


def test_cache_from_the_future_is_stale(server: ScriptedServer, cache: Path) -> None:
    """If the clock went back since the cache was written, then the cache is not trusted."""
    server.models(PAYLOAD)
    clock = Clock()
    load_catalog(server.base_url, None, cache_dir=cache, now=clock)

    clock.time -= 10

    assert not load_catalog(server.base_url, None, cache_dir=cache, now=clock).from_cache


def test_refresh_fetches_anyway(server: ScriptedServer, cache: Path) -> None:
    """If refresh=True, then the server is asked even though the cache is fresh."""
    server.models(PAYLOAD)
    load_catalog(server.base_url, None, cache_dir=cache)

    result = load_catalog(server.base_url, None, cache_dir=cache, refresh=True)

    assert not result.from_cache
    assert len(models_gets(server)) == 2


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 1, "fetched_at": "yesterday", "payload": {"data": []}}',
        b'{"version": 1, "fetched_at": 1750000000, "payload": []}',
        b'{"version": 99, "fetched_at": 1750000000, "payload": {"data": []}}',
    ],
)
def test_corrupt_cache_is_refetched(server: ScriptedServer, cache: Path, content: bytes) -> None:
    """If the cache file is unreadable or of another shape, then it is ignored and rewritten."""
    server.models(PAYLOAD)
    clock = Clock()
    load_catalog(server.base_url, None, cache_dir=cache, now=clock)
    (cache_file,) = cache.iterdir()
    cache_file.write_bytes(content)

    result = load_catalog(server.base_url, None, cache_dir=cache, now=clock)

    assert not result.from_cache
    assert len(result.models) == 3
    assert json.loads(cache_file.read_bytes())["payload"] == PAYLOAD


def test_cache_never_holds_the_token(server: ScriptedServer, cache: Path) -> None:
    """If the catalogue was fetched with a token, then no cache file contains it."""
    server.models(PAYLOAD)

    load_catalog(server.base_url, TOKEN, cache_dir=cache)

    files = list(cache.iterdir())
    assert len(files) == 1
    assert all(TOKEN not in path.read_text(encoding="utf-8") for path in files)


def test_payload_echoing_the_token_is_not_cached(server: ScriptedServer, cache: Path) -> None:
    """If the server put the token in the catalogue, then it is returned but not written."""
    server.models({"data": [{"id": "x/y", "owned_by": TOKEN}]})

    result = load_catalog(server.base_url, TOKEN, cache_dir=cache)

    assert result.models[0].id == "x/y"
    assert not cache.exists() or not any(cache.iterdir())


def test_cache_is_keyed_by_base_url(server: ScriptedServer, cache: Path) -> None:
    """If another base URL is asked, then it gets its own cache file; a trailing slash does not."""
    server.models(PAYLOAD)
    other = server.base_url.replace("127.0.0.1", "localhost")

    load_catalog(server.base_url, None, cache_dir=cache)
    slash = load_catalog(server.base_url + "/", None, cache_dir=cache)
    elsewhere = load_catalog(other, None, cache_dir=cache)

    assert slash.from_cache
    assert not elsewhere.from_cache
    assert len(list(cache.iterdir())) == 2
    assert not any(server.base_url in p.read_text(encoding="utf-8") for p in cache.iterdir())


def test_unwritable_cache_still_returns_the_catalogue(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """If the cache dir cannot be made, then the catalogue is still returned, with a warning."""
    server.models(PAYLOAD)
    blocker = tmp_path / "file"
    blocker.write_text("in the way")

    with caplog.at_level(logging.WARNING, logger="m2kit"):
        result = load_catalog(server.base_url, None, cache_dir=blocker / "cache")

    assert len(result.models) == 3
    assert "could not cache" in caplog.text


def test_fetch_errors_pass_through_load(steps: CatalogServer, cache: Path) -> None:
    """If the fetch fails, then load_catalog raises the same error and writes no cache."""
    steps.queue(error_step(500, {"error": "down"}))

    with pytest.raises(ServerError):
        load_catalog(steps.base_url, None, cache_dir=cache)

    assert not cache.exists()


def test_default_cache_dir_is_the_platform_one(isolated_user: Path) -> None:
    """If M2_HOME is not set, then the cache is the user cache dir for m2kit."""
    expected = Path(platformdirs.user_cache_dir("m2kit"))

    assert default_cache_dir() == expected
    assert isolated_user in expected.parents


def test_default_cache_dir_follows_m2_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: ScriptedServer
) -> None:
    """If M2_HOME is set, then the cache is M2_HOME/cache, and load_catalog writes there."""
    monkeypatch.setenv("M2_HOME", str(tmp_path / "m2"))
    server.models(PAYLOAD)

    load_catalog(server.base_url, None)

    assert default_cache_dir() == tmp_path / "m2" / "cache"
    assert len(list((tmp_path / "m2" / "cache").iterdir())) == 1


MODELS = parse_catalog(PAYLOAD)


def test_search_is_a_case_insensitive_substring() -> None:
    """If the query matches part of an id in any case, then that model is found, in order."""
    assert [m.id for m in search(MODELS, "minimax")] == ["MiniMaxAI/MiniMax-M2"]
    assert [m.id for m in search(MODELS, "I/")] == [
        "MiniMaxAI/MiniMax-M2",
        "deepseek-ai/DeepSeek-R1",
    ]
    assert search(MODELS, "") == MODELS
    assert search(MODELS, "llama") == []


def test_find_model_is_exact_but_ignores_case() -> None:
    """If the id matches whole in any case, then find_model returns it; a part does not."""
    model = find_model(MODELS, "minimaxai/minimax-m2")

    assert model is not None
    assert model.id == "MiniMaxAI/MiniMax-M2"
    assert find_model(MODELS, "MiniMax") is None


def test_fastest_skips_providers_that_are_not_live() -> None:
    """If the fastest provider is not live, then pick takes the fastest live one."""
    result = pick(MODELS[0], "fastest")

    assert result.offer is not None
    assert result.offer.provider == "fireworks-ai"
    assert result.figure == 140.1
    assert "highest throughput among 2 live providers" in result.reason
    assert "2 skipped" in result.reason


def test_cheapest_breaks_ties_on_input_price() -> None:
    """If output prices tie, then the lower input price wins; a missing one loses."""
    model = Model(
        "x/y",
        providers=(
            ProviderOffer("a", "live", output_price=1.0),
            ProviderOffer("b", "live", input_price=0.5, output_price=1.0),
            ProviderOffer("c", "live", input_price=0.2, output_price=1.0),
            ProviderOffer("d", "error", input_price=0.1, output_price=0.1),
            ProviderOffer("e", "live", input_price=0.0),
        ),
    )

    result = pick(model, "cheapest")

    assert result.offer is not None
    assert result.offer.provider == "c"
    assert result.figure == 1.0


def test_cheapest_of_the_recorded_shape() -> None:
    """If two live providers tie on both prices, then the first in the catalogue wins."""
    result = pick(MODELS[0], "cheapest")

    assert result.offer is not None
    assert result.offer.provider == "novita"
    assert result.figure == 1.2


def test_fastest_breaks_ties_on_latency() -> None:
    """If throughputs tie, then the lower first-token latency wins; a missing latency loses."""
    model = Model(
        "x/y",
        providers=(
            ProviderOffer("a", "live", throughput=100.0),
            ProviderOffer("b", "live", throughput=100.0, first_token_latency_ms=900),
            ProviderOffer("c", "live", throughput=100.0, first_token_latency_ms=300),
        ),
    )

    result = pick(model, "fastest")

    assert result.offer is not None
    assert result.offer.provider == "c"


@pytest.mark.parametrize("policy", ["fastest", "cheapest"])
@pytest.mark.parametrize(
    ("providers", "reason"),
    [
        ((), "lists no provider"),
        ((ProviderOffer("a", "error", throughput=9.0, output_price=1.0),), "no provider is live"),
        ((ProviderOffer("a", "live"), ProviderOffer("b")), "no live provider reports its"),
    ],
)
def test_pick_without_a_candidate_says_why(
    policy: Policy, providers: tuple[ProviderOffer, ...], reason: str
) -> None:
    """If no live provider has the figure, then pick returns no offer and a reason."""
    result = pick(Model("x/y", providers=providers), policy)

    assert result.offer is None
    assert result.figure is None
    assert reason in result.reason


def test_pick_refuses_other_policies() -> None:
    """If the policy is not fastest or cheapest, then ConfigError: the figures cannot say."""
    with pytest.raises(ConfigError, match="preferred"):
        pick(MODELS[0], "preferred")  # type: ignore[arg-type]  # what a caller might pass
