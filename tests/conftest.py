"""Shared fixtures: the scripted server, an isolated user for every test, and the `live` marker."""

from __future__ import annotations

import functools
import os
import socket
import tempfile
import threading
from typing import TYPE_CHECKING

import pytest

from _server import ScriptedServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_ROUTER_HOST = "router.huggingface.co"
# Read before any fixture runs, because every test's environment is stripped of it.
_REAL_HF_TOKEN = os.environ.get("HF_TOKEN") or None
# huggingface_hub fixes its token-file path from HF_HOME at first import, which may come before
# any fixture: point it at an empty folder now, so no test can read the real user's login.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="m2kit-hf-home-")
_REMOVED = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_API", "HF_TOKEN_PATH")
_USER_DIRS = {
    "HOME": "home",
    "HF_HOME": "hf",
    "XDG_CONFIG_HOME": "config",
    "XDG_DATA_HOME": "data",
    "XDG_CACHE_HOME": "cache",
    "XDG_STATE_HOME": "state",
    "XDG_RUNTIME_DIR": "runtime",
}


@pytest.fixture(scope="session")
def _scripted_server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def server(_scripted_server: ScriptedServer) -> Iterator[ScriptedServer]:
    """The session's scripted server, emptied of steps, payloads and recorded requests."""
    _scripted_server.reset()
    yield _scripted_server
    _scripted_server.reset()


@pytest.fixture(autouse=True)
def isolated_user(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh user for each test: home, HF and XDG dirs under a temporary folder, no tokens.

    Every `M2_*` and Hugging Face token variable is removed. Proxy variables are removed too, and
    `NO_PROXY` covers the loopback, so requests to the scripted server never leave the machine;
    live tests keep the real proxy settings, since they need the real network path.
    """
    root = tmp_path / "user"
    for name in list(os.environ):
        if name.startswith(("XDG_", "M2_")) or name in _REMOVED:
            monkeypatch.delenv(name)

    for variable, folder in _USER_DIRS.items():
        (root / folder).mkdir(parents=True)
        monkeypatch.setenv(variable, str(root / folder))

    if request.node.get_closest_marker("live") is None:
        for name in list(os.environ):
            if name.upper().endswith("_PROXY"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return root


@pytest.fixture
def live_token() -> str:
    """The HF_TOKEN of the real environment, for tests marked `live`."""
    if _REAL_HF_TOKEN is None:
        pytest.skip("live test: set HF_TOKEN to run it")
    return _REAL_HF_TOKEN


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("live") is None:
        return

    if _REAL_HF_TOKEN is None:
        pytest.skip("live test: set HF_TOKEN to run it")
    if not _router_resolves():
        pytest.skip(f"live test: {_ROUTER_HOST} does not resolve; run it where the network is up")


@functools.cache
def _router_resolves() -> bool:
    """Look the router up in a thread, since getaddrinfo has no timeout of its own."""
    found: list[bool] = []

    def look_up() -> None:
        try:
            found.append(bool(socket.getaddrinfo(_ROUTER_HOST, 443)))
        except OSError:
            found.append(False)

    thread = threading.Thread(target=look_up, name="router-lookup", daemon=True)
    thread.start()
    thread.join(timeout=5.0)
    return found == [True]
