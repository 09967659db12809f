"""Tests for m2kit._retry: which failures are retried and how long each wait is."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2kit._errors import (
    APIError,
    ConfigError,
    ConnectionFailed,
    StreamErrorEvent,
    StreamInterrupted,
    error_from_response,
)
from m2kit._retry import (
    NO_RETRY,
    RETRY_STATUSES,
    RetryPolicy,
    RetrySchedule,
    is_retryable,
    server_wait,
)
from m2kit._types import Wait

NOW = datetime(2025, 11, 3, 12, 0, 0, tzinfo=timezone.utc)
LOADING = '{"error": "Model MiniMaxAI/MiniMax-M2 is currently loading", "estimated_time": %s}'


class FakeClock:
    """A steady clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def answer(status: int, headers: dict[str, str] | None = None, body: str = "") -> APIError:
    return error_from_response(status, headers or {}, body or '{"error": "no"}')


def steady(policy: RetryPolicy, draw: float = 1.0) -> tuple[RetrySchedule, FakeClock]:
    clock = FakeClock()
    return policy.schedule(clock=clock, rng=lambda: draw), clock


def exact(
    initial_wait: float = 1.0, max_wait: float = 20.0, budget: float = math.inf
) -> RetryPolicy:
    """A policy without jitter, so waits are exact, and by default without a budget."""
    return RetryPolicy(
        max_attempts=100, budget=budget, initial_wait=initial_wait, max_wait=max_wait, jitter=0.0
    )


# server_wait


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250.5"}, 0.2505),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": " 3 "}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "4"}, 4.0),
        ({"RETRY-AFTER": "4"}, 4.0),
        ({"Retry-After-Ms": "900"}, 0.9),
    ],
)
def test_server_wait_reads_header_numbers(headers: dict[str, str], seconds: float) -> None:
    """If a response sends retry-after-ms or Retry-After as a number, in any case, then that is
    the wait in seconds."""
    assert server_wait(headers, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "date",
    [
        "Mon, 03 Nov 2025 12:00:30 GMT",  # IMF-fixdate, the preferred form
        "Monday, 03-Nov-25 12:00:30 GMT",  # obsolete RFC 850 form
        "Mon Nov  3 12:00:30 2025",  # obsolete asctime form, no zone
    ],
)
def test_server_wait_reads_http_dates(date: str) -> None:
    """If Retry-After is an HTTP date in any of RFC 9110's three forms, then the wait lasts until
    that date."""
    assert server_wait({"Retry-After": date}, now=NOW) == pytest.approx(30.0)


def test_server_wait_date_in_the_past_is_zero() -> None:
    """If Retry-After is a date already past, then the wait is 0."""
    assert server_wait({"Retry-After": "Mon, 03 Nov 2025 11:00:00 GMT"}, now=NOW) == 0.0


def test_server_wait_naive_now_is_utc() -> None:
    """If `now` has no zone, then it is read as UTC, like the HTTP date."""
    naive = NOW.replace(tzinfo=None)
    assert server_wait({"Retry-After": "Mon, 03 Nov 2025 12:00:10 GMT"}, now=naive) == 10.0


def test_server_wait_date_defaults_to_current_time() -> None:
    """If no `now` is given, then a date is measured from the current time."""
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    date = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 3500 < (server_wait({"Retry-After": date}) or 0) <= 3600


def test_server_wait_prefers_milliseconds() -> None:
    """If both headers are present, then retry-after-ms wins over Retry-After."""
    assert server_wait({"Retry-After": "9", "retry-after-ms": "2000"}) == 2.0


@pytest.mark.parametrize(
    "garbage", ["-5", "nan", "NaN", "inf", "Infinity", "soon", "", "1_000", "0x10", "٣", "5 s"]
)
def test_server_wait_ignores_garbage(garbage: str) -> None:
    """If a header holds a negative, non-finite or non-numeric value, then it is ignored."""
    assert server_wait({"retry-after-ms": garbage}) is None
    assert server_wait({"retry-after": garbage}) is None


def test_server_wait_garbage_milliseconds_fall_back_to_retry_after() -> None:
    """If retry-after-ms is garbage, then a valid Retry-After still counts."""
    assert server_wait({"retry-after-ms": "soon", "retry-after": "3"}) == 3.0


def test_server_wait_without_headers_is_none() -> None:
    """If the response names no wait, then server_wait returns None."""
    assert server_wait({"content-type": "application/json"}) is None


def test_server_wait_reads_httpx2_headers() -> None:
    """If the headers are httpx2's own Headers, as the client has them, then they are read too."""
    assert server_wait(httpx2.Headers({"Retry-After": "6"})) == 6.0


# is_retryable


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_retry_statuses_are_retryable(status: int) -> None:
    """If the server answers 408, 429, 500, 502, 503 or 504, then the attempt is retryable."""
    assert is_retryable(answer(status))


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422, 501])
def test_other_statuses_are_not_retryable(status: int) -> None:
    """If the server answers another error status, then it is not retried."""
    assert not is_retryable(answer(status))


def test_connection_failure_is_retryable() -> None:
    """If the server could not be reached, then the attempt is retryable."""
    assert is_retryable(ConnectionFailed("connection refused"))


@pytest.mark.parametrize(
    "error",
    [
        StreamInterrupted("dropped"),
        StreamErrorEvent("overloaded"),
        ValueError("x"),
        KeyboardInterrupt(),
    ],
)
def test_stream_and_foreign_errors_are_not_retryable(error: BaseException) -> None:
    """If a stream had begun, or the error is not ours, then it is never retried."""
    assert not is_retryable(error)


# RetrySchedule: backoff


def test_backoff_doubles_up_to_its_cap() -> None:
    """If the server names no wait, then our waits grow from initial_wait by multiplier up to
    max_wait."""
    schedule, _ = steady(exact(initial_wait=1.0, max_wait=20.0))
    waits = [schedule.next_wait(answer(502)) for _ in range(7)]
    assert [w.seconds for w in waits if w] == [1, 2, 4, 8, 16, 20, 20]
    assert {w.source for w in waits if w} == {"backoff"}


def test_backoff_with_zero_initial_wait_survives_many_attempts() -> None:
    """If initial_wait is 0, then every wait is 0 even after the multiplier would overflow."""
    policy = RetryPolicy(max_attempts=2000, budget=math.inf, initial_wait=0.0, multiplier=10.0)
    schedule, _ = steady(policy)
    waits = [schedule.next_wait(answer(500)) for _ in range(1500)]
    assert all(w is not None and w.seconds == 0.0 for w in waits)


@pytest.mark.parametrize(("draw", "seconds"), [(0.0, 2.0), (0.5, 3.0), (1.0, 4.0)])
def test_jitter_spreads_the_wait_below_the_full_backoff(draw: float, seconds: float) -> None:
    """If jitter is 0.5, then the wait lies between half and all of the backoff wait."""
    policy = RetryPolicy(initial_wait=4.0, jitter=0.5)
    schedule, _ = steady(policy, draw)
    wait = schedule.next_wait(answer(500))
    assert wait is not None
    assert wait.seconds == pytest.approx(seconds)


@pytest.mark.parametrize("draw", [-3.0, 7.0])
def test_a_bad_rng_cannot_break_the_cap(draw: float) -> None:
    """If rng returns a number outside [0, 1), then the wait still stays within the cap."""
    schedule, _ = steady(RetryPolicy(initial_wait=30.0, max_wait=20.0, jitter=1.0), draw)
    wait = schedule.next_wait(answer(500))
    assert wait is not None
    assert 0.0 <= wait.seconds <= 20.0


@given(
    initial=st.floats(0, 50),
    multiplier=st.floats(1, 10),
    cap=st.floats(0, 100),
    jitter=st.floats(0, 1),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=12),
)
def test_backoff_stays_within_its_bounds(
    initial: float, multiplier: float, cap: float, jitter: float, draws: list[float]
) -> None:
    """If the server names no wait, then the n-th wait is at most min(max_wait, the n-th backoff
    step) and at least (1 - jitter) of it."""
    policy = RetryPolicy(
        max_attempts=len(draws) + 1,
        budget=math.inf,
        initial_wait=initial,
        max_wait=cap,
        multiplier=multiplier,
        jitter=jitter,
    )
    pending = iter(draws)
    schedule = policy.schedule(clock=FakeClock(), rng=lambda: next(pending))

    for n in range(1, len(draws) + 1):
        wait = schedule.next_wait(answer(429))
        assert wait is not None
        full = min(cap, initial * multiplier ** (n - 1))
        assert full * (1 - jitter) - 1e-9 <= wait.seconds <= full + 1e-9
        assert wait.seconds <= cap + 1e-9


def test_default_schedule_needs_no_arguments() -> None:
    """If no clock or rng is passed, then the real ones give a first wait within the defaults."""
    wait = RetryPolicy().schedule().next_wait(answer(429))
    assert wait is not None
    assert 0.5 <= wait.seconds <= 1.0


# RetrySchedule: server-given waits


def test_server_wait_replaces_backoff_and_is_not_capped() -> None:
    """If the server asks for a wait longer than max_wait, then that wait is kept as asked."""
    schedule, _ = steady(RetryPolicy(max_wait=20.0))
    wait = schedule.next_wait(answer(429, {"Retry-After": "60"}))
    assert wait == Wait(reason="rate limited (429)", seconds=60.0, attempt=1, source="server")


def test_server_wait_in_milliseconds() -> None:
    """If the server sends retry-after-ms, then the wait is that many milliseconds."""
    schedule, _ = steady(RetryPolicy())
    wait = schedule.next_wait(answer(503, {"retry-after-ms": "2500"}))
    assert wait is not None
    assert (wait.seconds, wait.source) == (2.5, "server")


def test_loading_model_waits_its_estimated_time() -> None:
    """If a 503 says the model is loading with an estimated_time, then the wait is about that
    long."""
    schedule, _ = steady(RetryPolicy())
    wait = schedule.next_wait(answer(503, body=LOADING % "42.5"))
    assert wait == Wait(reason="model is loading (503)", seconds=42.5, attempt=1, source="server")


def test_loading_model_with_tiny_estimate_waits_initial_wait() -> None:
    """If a loading model's estimate is about 0, then the wait is at least initial_wait."""
    schedule, _ = steady(RetryPolicy(initial_wait=1.5))
    wait = schedule.next_wait(answer(503, body=LOADING % "0.01"))
    assert wait is not None
    assert (wait.seconds, wait.source) == (1.5, "server")


def test_retry_after_beats_estimated_time() -> None:
    """If a loading 503 also sends Retry-After, then the header decides the wait."""
    schedule, _ = steady(RetryPolicy())
    wait = schedule.next_wait(answer(503, {"Retry-After": "5"}, LOADING % "42"))
    assert wait is not None
    assert wait.seconds == 5.0


def test_loading_model_without_estimate_backs_off() -> None:
    """If a 503 says the model is loading but gives no estimate, then our own backoff applies."""
    schedule, _ = steady(exact(initial_wait=1.0))
    wait = schedule.next_wait(answer(503, body='{"error": "Model is currently loading"}'))
    assert wait == Wait(reason="model is loading (503)", seconds=1.0, attempt=1, source="backoff")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (answer(429), "rate limited (429)"),
        (answer(408), "request timeout (408)"),
        (answer(500), "server error (500)"),
        (answer(502), "server error (502)"),
        (answer(503), "server error (503)"),
        (answer(504), "server error (504)"),
        (ConnectionFailed("refused"), "could not connect"),
    ],
)
def test_wait_reason_names_the_cause(error: BaseException, reason: str) -> None:
    """If an attempt fails, then the wait's reason is a short phrase naming the cause."""
    schedule, _ = steady(RetryPolicy())
    wait = schedule.next_wait(error)
    assert wait is not None
    assert wait.reason == reason


# RetrySchedule: giving up


def test_attempts_are_counted_and_limited() -> None:
    """If max_attempts is 3, then two waits are given, numbered 1 and 2, and the third failure
    gives up."""
    schedule, _ = steady(RetryPolicy(max_attempts=3))
    first, second, third = (schedule.next_wait(answer(500)) for _ in range(3))
    assert first is not None
    assert second is not None
    assert (first.attempt, second.attempt) == (1, 2)
    assert third is None
    assert schedule.attempts == 3
    assert schedule.gave_up == "reached the limit of 3 attempts"


def test_no_retry_gives_up_at_once() -> None:
    """If the policy is NO_RETRY, then the first failure gives up, saying retries are off."""
    schedule, _ = steady(NO_RETRY)
    assert schedule.next_wait(answer(429, {"Retry-After": "1"})) is None
    assert schedule.gave_up == "retries are turned off"


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_non_retryable_status_gives_up(status: int) -> None:
    """If the server answers a status that is not retried, then the schedule gives up at once."""
    schedule, _ = steady(RetryPolicy())
    assert schedule.next_wait(answer(status)) is None
    assert schedule.gave_up == f"a {status} answer is not retried"
    assert schedule.attempts == 1


def test_started_stream_gives_up() -> None:
    """If a stream broke after it began, then the schedule gives up and says it is not replayed."""
    schedule, _ = steady(RetryPolicy())
    assert schedule.next_wait(StreamInterrupted("dropped")) is None
    assert schedule.gave_up == "the answer had already begun, so it is not replayed"


def test_server_wait_past_the_budget_gives_up_saying_so() -> None:
    """If the server asks for longer than the budget has left, then the schedule gives up and
    says both numbers."""
    schedule, clock = steady(RetryPolicy(budget=120.0))
    clock.now += 90.0
    assert schedule.next_wait(answer(429, {"Retry-After": "120"})) is None
    assert schedule.gave_up == (
        "the server asked to wait 120 s, more than the 30 s left of the 120 s retry budget"
    )


def test_backoff_past_the_budget_gives_up_saying_so() -> None:
    """If our own next wait would end past the budget, then the schedule gives up and says so."""
    schedule, clock = steady(exact(initial_wait=16.0, budget=120.0))
    clock.now += 115.0
    assert schedule.next_wait(ConnectionFailed("refused")) is None
    assert schedule.gave_up == (
        "the next backoff wait is 16 s, more than the 5 s left of the 120 s retry budget"
    )


def test_spent_budget_gives_up() -> None:
    """If the budget is already spent, then even a zero wait is not taken."""
    schedule, clock = steady(RetryPolicy(budget=10.0))
    clock.now += 12.0
    assert schedule.next_wait(answer(503, {"Retry-After": "0"})) is None
    assert schedule.gave_up == "the 10 s retry budget is used up"


def test_wait_ending_exactly_at_the_budget_is_taken() -> None:
    """If a wait ends exactly when the budget does, then it is still taken."""
    schedule, clock = steady(RetryPolicy(budget=60.0))
    clock.now += 50.0
    wait = schedule.next_wait(answer(429, {"Retry-After": "10"}))
    assert wait is not None
    assert wait.seconds == 10.0


def test_budget_counts_from_the_schedule_start() -> None:
    """If time passes across attempts, then the budget left shrinks with it."""
    schedule, clock = steady(RetryPolicy(budget=30.0))
    clock.now += 5.0
    assert schedule.next_wait(answer(429, {"Retry-After": "20"})) is not None
    clock.now += 20.0 + 4.0
    assert schedule.next_wait(answer(429, {"Retry-After": "2"})) is None
    assert "the 1 s left of the 30 s retry budget" in schedule.gave_up


def test_summary_counts_attempts_and_time() -> None:
    """If a request gave up, then the summary says how many attempts over how long."""
    schedule, clock = steady(RetryPolicy(max_attempts=4))
    for _ in range(4):
        clock.now += 9.25
        schedule.next_wait(answer(502))
    assert schedule.summary() == "after 4 attempts over 37 s"


def test_summary_of_one_short_attempt() -> None:
    """If one attempt failed quickly, then the summary is singular with one decimal."""
    schedule, clock = steady(NO_RETRY)
    clock.now += 0.5
    schedule.next_wait(answer(401))
    assert schedule.summary() == "after 1 attempt over 0.5 s"


# RetryPolicy


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"budget": -1.0},
        {"budget": math.nan},
        {"initial_wait": -0.1},
        {"max_wait": math.nan},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_policy_rejects_impossible_settings(bad: dict[str, Any]) -> None:
    """If a setting is out of range, then RetryPolicy raises ConfigError naming it."""
    with pytest.raises(ConfigError, match=next(iter(bad))):
        RetryPolicy(**bad)


def test_policy_defaults() -> None:
    """If nothing is set, then the defaults are 6 attempts within 120 s, 1 s doubling to 20 s."""
    assert RetryPolicy() == RetryPolicy(6, 120.0, 1.0, 20.0, 2.0, 0.5)
    assert NO_RETRY.max_attempts == 1
