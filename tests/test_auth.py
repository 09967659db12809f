"""Tests for m2kit._auth: which token goes to which URL.

huggingface_hub fixes the token file's path from HF_HOME when it is first imported, so the tests
that need it to read a token file, or to find none, run `resolve_token` in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import m2kit._auth
from m2kit._auth import is_huggingface_url, resolve_token

ROUTER = "https://router.huggingface.co/v1"
SELF_HOSTED = "http://localhost:8000/v1"
SRC = str(Path(m2kit._auth.__file__).parents[1])

HUGGINGFACE_URLS = [
    ROUTER,
    "https://huggingface.co",
    "https://hf.co/api",
    "https://api-inference.huggingface.co/models/x",
    "https://HuggingFace.CO:443/v1",
    "https://user:pw@router.huggingface.co/v1",
]

LOOK_ALIKES = [
    "https://huggingface.co.evil.com/v1",
    "https://hf.co.evil.com/v1",
    "https://evilhuggingface.co/v1",
    "https://evilhf.co/v1",
    "http://router.huggingface.co/v1",
    "http://huggingface.co",
    "https://huggingface.co@evil.com/",
    "https://router.huggingface.co:443@evil.com/v1",
    "https://evil.com/router.huggingface.co/v1",
    "https://evil.com?.huggingface.co",
    "https://evil.com#.huggingface.co",
    "https://huggingface.co\t.evil.com/",
    "https://huggingface%2Eco/",
    "wss://router.huggingface.co/v1",
    "router.huggingface.co/v1",
    SELF_HOSTED,
    "https://my-vllm.example.com/v1",
    "",
]

_VARIABLES = (
    "M2_API_KEY",
    "HUGGINGFACE_API",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_OIDC_RESOURCE",
)


@pytest.fixture(autouse=True)
def hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No token from the user's own environment or login; HF_HOME is an empty directory."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hf"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    return home


def resolve_in_fresh_process(*urls: str) -> list[str | None]:
    """resolve_token for each URL, in a new interpreter that sees the current environment."""
    code = (
        "import json, sys\n"
        "from m2kit._auth import resolve_token\n"
        "print(json.dumps([resolve_token(url) for url in sys.argv[1:]]))\n"
    )
    path = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code, *urls],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    found: list[str | None] = json.loads(done.stdout)
    return found


# is_huggingface_url


@pytest.mark.parametrize("url", HUGGINGFACE_URLS)
def test_huggingface_hosts_are_recognised(url: str) -> None:
    """If the URL is https on huggingface.co, hf.co or a subdomain, then it is Hugging Face."""
    assert is_huggingface_url(url)


@pytest.mark.parametrize("url", LOOK_ALIKES)
def test_look_alikes_are_not_huggingface(url: str) -> None:
    """If the URL only looks like Hugging Face, or is plain http, then it is not Hugging Face."""
    assert not is_huggingface_url(url)


# resolve_token, in this process


def test_explicit_key_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """If an api_key is passed, then it wins over every variable."""
    monkeypatch.setenv("M2_API_KEY", "m2-env")
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    assert resolve_token(ROUTER, "explicit") == "explicit"


def test_m2_api_key_beats_the_hugging_face_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """If M2_API_KEY is set, then it is used even for the router."""
    monkeypatch.setenv("M2_API_KEY", "m2-env")
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    assert resolve_token(ROUTER) == "m2-env"


def test_self_hosted_gets_explicit_and_m2_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the URL is self-hosted, then an explicit key or M2_API_KEY is still sent."""
    assert resolve_token(SELF_HOSTED, "explicit") == "explicit"
    monkeypatch.setenv("M2_API_KEY", "m2-env")
    assert resolve_token(SELF_HOSTED) == "m2-env"


def test_router_gets_hf_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """If only HF_TOKEN is set, then the router gets it."""
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    assert resolve_token(ROUTER) == "hf_environment"


def test_hf_token_beats_huggingface_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """If both HF_TOKEN and HUGGINGFACE_API are set, then huggingface_hub's token wins."""
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    monkeypatch.setenv("HUGGINGFACE_API", "hf_legacy")
    assert resolve_token(ROUTER) == "hf_environment"


@pytest.mark.parametrize("url", LOOK_ALIKES)
def test_look_alikes_never_get_the_hugging_face_token(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """If HF_TOKEN and HUGGINGFACE_API are set, then a URL that is not Hugging Face gets
    neither."""
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    monkeypatch.setenv("HUGGINGFACE_API", "hf_legacy")
    assert resolve_token(url) is None


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """If api_key and M2_API_KEY are empty or blank, then the next source is used."""
    monkeypatch.setenv("M2_API_KEY", "  ")
    monkeypatch.setenv("HF_TOKEN", "hf_environment")
    assert resolve_token(ROUTER, "") == "hf_environment"


def test_surrounding_whitespace_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a key comes with a trailing newline, then it is sent without it."""
    monkeypatch.setenv("M2_API_KEY", "m2-env\n")
    assert resolve_token(SELF_HOSTED) == "m2-env"


# resolve_token, with huggingface_hub reading HF_HOME afresh


def test_token_file_goes_to_huggingface_only(hf_home: Path) -> None:
    """If `hf auth login` wrote a token file, then Hugging Face URLs get it and no others do."""
    (hf_home / "token").write_text("hf_from_login\n")
    found = resolve_in_fresh_process(*HUGGINGFACE_URLS, *LOOK_ALIKES)
    assert found == ["hf_from_login"] * len(HUGGINGFACE_URLS) + [None] * len(LOOK_ALIKES)


def test_huggingface_api_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    """If huggingface_hub has no token (HF_TOKEN empty, no file), then HUGGINGFACE_API is used,
    for Hugging Face only."""
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HUGGINGFACE_API", "hf_legacy")
    assert resolve_in_fresh_process(ROUTER, SELF_HOSTED) == ["hf_legacy", None]


def test_no_token_anywhere_is_none() -> None:
    """If no source holds a token, then the router gets None."""
    assert resolve_in_fresh_process(ROUTER) == [None]


def test_module_imports_nothing_heavy() -> None:
    """If _auth is imported, then httpx2 and huggingface_hub are not, so `m2 --help` stays fast."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_auth', {m2kit._auth.__file__!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted({'httpx2', 'huggingface_hub'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"
