"""`m2 usage` run as a user runs it, on real stores, with the catalogue from the scripted server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from _store_worker import MODEL, Chat, answer, complete
from m2kit import ConfigError
from m2kit._spend import month_start
from m2kit._store import Store
from m2kit._types import Usage
from m2kit.cli._usage import bars, parse_since

if TYPE_CHECKING:
    from _server import ScriptedServer

M2 = str(Path(sys.executable).with_name("m2"))
NOW = datetime(2025, 6, 18, 15, 30).timestamp()
CATALOG: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": MODEL,
            "providers": [
                {"provider": "novita", "status": "live", "pricing": {"input": 0.3, "output": 1.2}},
                {"provider": "fireworks-ai", "status": "live"},
            ],
        }
    ],
}
# 100k prompt and 50k completion tokens: $0.09 at novita's $0.3 / $1.2 per million.
BIG = Usage(prompt_tokens=100_000, completion_tokens=50_000, total_tokens=150_000)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("M2_HOME", str(tmp_path / "m2home"))
    monkeypatch.setenv("COLUMNS", "120")
    (tmp_path / "m2home").mkdir()
    return tmp_path / "m2home"


def call(
    store: Store,
    *,
    at: float,
    provider: str | None = "novita",
    model: str = f"{MODEL}:fastest",
    usage: Usage = BIG,
) -> None:
    """One call in the usage log, made at `at` through the real Store API."""
    chat = Chat(f"c{at}")
    reply = dataclasses.replace(answer("Hi."), provider=provider, usage=usage)
    turn = dataclasses.replace(complete("Hello", reply, started_at=at), model=model)
    store.end_turn(chat, store.start_turn(chat, "Hello"), turn)


def m2(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [M2, "usage", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def report(*args: str, server: ScriptedServer | None = None) -> tuple[dict[str, Any], str]:
    env = {"M2_BASE_URL": server.base_url} if server else {}
    result = m2("--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_parse_since_reads_hours_as_a_rolling_window() -> None:
    """If --since is 24h, then the period starts 24 hours before now."""
    assert parse_since("24h", NOW) == NOW - 24 * 3600


def test_parse_since_reads_days_from_midnight() -> None:
    """If --since is 7d, then the period starts at local midnight six days ago, so today counts."""
    assert parse_since("7d", NOW) == datetime(2025, 6, 12).timestamp()
    assert parse_since("1d", NOW) == datetime(2025, 6, 18).timestamp()
    assert parse_since("2w", NOW) == parse_since("14d", NOW)


def test_parse_since_reads_dates_and_times() -> None:
    """If --since is an ISO date or time, then the period starts there (UTC for a Z)."""
    assert parse_since("2025-06-01", NOW) == datetime(2025, 6, 1).timestamp()
    assert parse_since("2025-06-01T09:30", NOW) == datetime(2025, 6, 1, 9, 30).timestamp()
    utc = datetime.fromisoformat("2025-06-01T09:30+00:00").timestamp()
    assert parse_since("2025-06-01T09:30Z", NOW) == utc


@pytest.mark.parametrize("text", ["yesterday", "7", "0d", "7y", "2030-01-01"])
def test_parse_since_refuses_anything_else(text: str) -> None:
    """If --since is not a period or a past date, then it is a ConfigError naming the forms."""
    with pytest.raises(ConfigError) as caught:
        parse_since(text, NOW)

    assert "7d" in caught.value.hint


def test_bars_fill_the_width_for_the_largest_value() -> None:
    """If values differ, then the largest bar fills the room and the others are in proportion."""
    lines = bars([("mon", 100), ("tue", 50), ("wed", 0)], 40)

    # 31 columns are left for the bars: 40, less the labels, the numbers and two spaces.
    assert lines == [
        "mon " + "█" * 31 + " 100",
        "tue " + "█" * 15 + "▌" + " " * 15 + "  50",
        "wed " + " " * 31 + "   0",
    ]
    assert all(len(line) < 40 for line in lines)


def test_bars_show_any_value_above_zero() -> None:
    """If a value is tiny beside the largest, then it still gets a sliver of a bar."""
    lines = bars([("a", 1_000_000), ("b", 1)], 30)

    assert lines[1].split()[1] == "▏"


def test_bars_fall_back_to_ascii() -> None:
    """If the output cannot take Unicode, then bars are drawn with #."""
    lines = bars([("a", 4), ("b", 2)], 20, unicode=False)

    assert lines == ["a " + "#" * 15 + " 4", "b " + "#" * 8 + " " * 7 + " 2"]


def test_prices_come_from_the_catalogue(home: Path, server: ScriptedServer) -> None:
    """If the catalogue prices novita, then a call there is priced from it, suffix stripped, and
    grouped by day, model, provider."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time())

    data, _ = report(server=server)

    assert data["totals"]["calls"] == 1
    assert data["totals"]["total_tokens"] == 150_000
    assert data["totals"]["usd"] == pytest.approx(0.09)
    assert data["totals"]["unpriced_calls"] == 0
    (model,) = data["models"]
    assert (model["model"], model["provider"]) == (MODEL, "novita")
    assert [provider["provider"] for provider in data["providers"]] == ["novita"]
    assert data["days"][0]["day"] == datetime.now().date().isoformat()
    assert data["prices"] == {"catalog": True, "problem": None}
    assert [request.path for request in server.requests] == ["/v1/models"]


def test_an_unpriced_provider_is_marked(home: Path, server: ScriptedServer) -> None:
    """If the catalogue has no price for the provider, then the call is counted as unpriced."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time())
        call(store, at=time.time(), provider="fireworks-ai")

    data, stderr = report(server=server)

    assert data["totals"]["usd"] == pytest.approx(0.09)
    assert data["totals"]["unpriced_calls"] == 1
    assert "1 call could not be priced" in stderr
    assert "prices.<provider>.input" in stderr


def test_a_call_without_token_counts_is_not_blamed_on_prices(
    home: Path, server: ScriptedServer
) -> None:
    """If a priced provider's call has no token counts (cut off), then the note says so and does
    not suggest setting prices."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time())
        call(store, at=time.time(), usage=Usage())

    data, stderr = report(server=server)

    assert data["totals"]["unpriced_calls"] == 1
    assert "1 call had no token counts" in stderr
    assert "could not be priced" not in stderr
    assert "prices.<provider>" not in stderr


def test_warning_once_the_month_passes_warn_at(home: Path, server: ScriptedServer) -> None:
    """If this month's estimate ($0.09) passes warn_at (0.8) of $0.10, then a warning says so."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time())

    data, stderr = report(server=server)

    month = data["month"]
    assert month["usd"] == pytest.approx(0.09)
    assert month["included_usd"] == 0.10
    assert month["fraction"] == pytest.approx(0.9)
    assert month["warning"] is True
    assert month["over"] is False
    (warning,) = [line for line in stderr.splitlines() if "warning" in line]
    assert "$0.0900" in warning
    assert "90%" in warning
    assert "$0.10" in warning


def test_no_warning_under_warn_at(home: Path, server: ScriptedServer) -> None:
    """If the config raises the credits to $2.00 (PRO), then $0.09 warns of nothing."""
    server.models(CATALOG)
    (home / "config.toml").write_text("[credits]\nmonthly_usd = 2.0\n")
    with Store(home / "m2.db") as store:
        call(store, at=time.time())

    data, stderr = report(server=server)

    assert data["month"]["included_usd"] == 2.0
    assert data["month"]["warning"] is False
    assert "warning" not in stderr


def test_past_the_credits_points_at_billing(home: Path, server: ScriptedServer) -> None:
    """If the estimate is past the included credits, then the warning says where to add more."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time())
        call(store, at=time.time())

    data, stderr = report(server=server)

    assert data["month"]["over"] is True
    assert "past the $0.10" in stderr
    assert "huggingface.co/settings/billing" in stderr


def test_the_month_counts_apart_from_the_period(home: Path, server: ScriptedServer) -> None:
    """If calls fall before the period or before this month, then the period and the month
    each count only their own."""
    server.models(CATALOG)
    now = time.time()
    start = month_start(now)
    with Store(home / "m2.db") as store:
        call(store, at=now)
        call(store, at=now - 3 * 86400)
        call(store, at=start - 3600)
    in_month = sum(at >= start for at in (now, now - 3 * 86400, start - 3600))

    data, _ = report("--since", "24h", server=server)

    assert data["totals"]["calls"] == 1
    assert data["month"]["calls"] == in_month
    assert data["month"]["usd"] == pytest.approx(0.09 * in_month)
    assert data["since"] == pytest.approx(now - 86400, abs=30)


def test_offline_uses_the_config_prices_only(home: Path, server: ScriptedServer) -> None:
    """If --offline is given, then no catalogue is fetched and the config's prices are used."""
    server.models(CATALOG)
    (home / "config.toml").write_text("[prices.novita]\ninput = 1.0\noutput = 2.0\n")
    with Store(home / "m2.db") as store:
        call(store, at=time.time())
        call(store, at=time.time(), provider="fireworks-ai")

    data, stderr = report("--offline", server=server)

    assert server.requests == []
    assert data["totals"]["usd"] == pytest.approx(0.1 * 1.0 + 0.05 * 2.0)
    assert data["totals"]["unpriced_calls"] == 1
    assert data["prices"] == {"catalog": False, "problem": None}
    assert "catalogue" not in stderr


def test_an_unreachable_catalogue_is_said_and_skipped(home: Path, server: ScriptedServer) -> None:
    """If the catalogue cannot be fetched, then m2 says so and estimates with config prices."""
    (home / "config.toml").write_text("[prices.novita]\ninput = 0.3\noutput = 1.2\n")
    with Store(home / "m2.db") as store:
        call(store, at=time.time())

    data, stderr = report(server=server)

    assert data["totals"]["usd"] == pytest.approx(0.09)
    assert data["prices"]["catalog"] is False
    assert "no models payload scripted" in data["prices"]["problem"]
    assert "could not get prices from the model catalogue" in stderr


def test_the_catalogue_is_cached(home: Path, server: ScriptedServer) -> None:
    """If m2 usage runs twice within the hour, then the catalogue is fetched once."""
    server.models(CATALOG)

    report(server=server)
    report(server=server)

    assert len(server.requests) == 1


def test_the_table_and_chart_are_plain_when_piped(home: Path, server: ScriptedServer) -> None:
    """If stdout is a pipe, then the tables, the bar chart and the credit line come plain."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time())
        call(store, at=time.time() - 86400, usage=Usage(1_000, 500, 1_500))

    result = m2(env={"M2_BASE_URL": server.base_url})

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out
    assert "2 calls, 151,500 tokens" in out
    today = datetime.now().date()
    rows = [line.split() for line in out.splitlines()]
    assert [today.isoformat(), "1", "100,000", "50,000", "150,000", "$0.0900"] in rows
    assert "Tokens per day" in out
    earlier, later = out.split("Tokens per day\n")[1].splitlines()[:2]
    assert earlier.startswith((today - timedelta(days=1)).isoformat())
    assert later.startswith(today.isoformat())
    assert later.count("█") > earlier.count("█")
    assert "included credits" in out
    assert "m2 config set credits.monthly_usd 2.00" in out


def test_no_store_means_no_calls(home: Path) -> None:
    """If there is no store yet, then m2 usage reports nothing used and creates no file."""
    data, _ = report("--offline")

    assert data["totals"]["calls"] == 0
    assert data["days"] == []
    assert data["month"]["warning"] is False
    assert not (home / "m2.db").exists()


def test_a_bad_period_is_one_line_exit_2(home: Path) -> None:
    """If --since cannot be read, then m2 says which forms work, in one line, exit 2."""
    result = m2("--since", "last week", "--offline")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "7d" in result.stderr


def test_what_m2_ask_spent_is_counted(home: Path, server: ScriptedServer) -> None:
    """If m2 ask made a call through novita, then m2 usage prices its tokens from the catalogue."""
    from _server import chunk, stream_step

    usage = {"prompt_tokens": 100_000, "completion_tokens": 50_000, "total_tokens": 150_000}
    events = [
        chunk(content="Hm.</think>\n\nHi."),
        chunk(finish_reason="stop"),
        chunk(choices=False, usage=usage),
    ]
    server.queue(stream_step(events, headers={"x-inference-provider": "novita"}))
    server.models(CATALOG)
    asked = subprocess.run(
        [M2, "ask", "Hello"],
        env={**os.environ, "M2_BASE_URL": server.base_url},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert asked.returncode == 0, asked.stderr

    data, _ = report(server=server)

    assert data["totals"]["usd"] == pytest.approx(0.09)
    assert data["providers"][0]["provider"] == "novita"


def test_a_tiny_spend_is_not_shown_as_zero(home: Path, server: ScriptedServer) -> None:
    """If a call cost a few millionths of a dollar, then the table shows it below $0.0001."""
    server.models(CATALOG)
    with Store(home / "m2.db") as store:
        call(store, at=time.time(), usage=Usage(12, 30, 42))

    result = m2(env={"M2_BASE_URL": server.base_url})

    assert result.returncode == 0, result.stderr
    assert "about <$0.0001." in result.stdout
    assert "$0.0000" not in result.stdout
