"""When to retry a failed request, and how long to wait first. No I/O: the client runs the loop.

A `RetryPolicy` is the user's setting; `RetryPolicy.schedule()` makes a `RetrySchedule` for one
request, which the client asks after every failed attempt: `next_wait(error)` returns the `Wait`
to sleep before the next attempt, or None when it is time to give up (`gave_up` says why).
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from ._errors import APIError, ConfigError, ConnectionFailed, ModelLoadingError, StreamError
from ._types import Wait

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Plain ASCII digits only: float() would also take "1_0", "inf", "nan" and non-ASCII digits.
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a request that failed before its answer began.

    All times are in seconds.

    - `max_attempts` (6): attempts in all, the first included; 1 turns retries off.
    - `budget` (120): no new attempt starts later than this after the first one began. A wait
      that would end past it is not taken: the request fails at once, saying how much was left.
    - `initial_wait` (1), `multiplier` (2), `max_wait` (20): our own backoff; the n-th wait is
      `min(max_wait, initial_wait * multiplier ** (n - 1))`.
    - `jitter` (0.5): the fraction of each backoff wait drawn at random, so the wait lies between
      `(1 - jitter)` times and the full backoff wait; it never goes above `max_wait`.

    A wait the server asks for (`retry-after-ms`, `Retry-After`, or a loading model's
    `estimated_time`) replaces the backoff wait; `max_wait` does not cap it, only `budget` does.
    Only failures before any byte of the answer are retried (see `is_retryable`).
    """

    max_attempts: int = 6
    budget: float = 120.0
    initial_wait: float = 1.0
    max_wait: float = 20.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, not {self.max_attempts}")
        for name in ("budget", "initial_wait", "max_wait"):
            value = getattr(self, name)
            # Written so that NaN fails too.
            if not value >= 0:
                raise ConfigError(f"{name} must be 0 or more seconds, not {value}")
        if not self.multiplier >= 1:
            raise ConfigError(f"multiplier must be 1 or more, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be between 0 and 1, not {self.jitter}")

    def schedule(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> RetrySchedule:
        """A fresh schedule for one request; make it just before the first attempt.

        `clock` gives seconds on a steady clock and `rng` a number in [0, 1); tests pass their own.
        """
        return RetrySchedule(self, clock=clock, rng=rng)


NO_RETRY = RetryPolicy(max_attempts=1)


class RetrySchedule:
    """The retry state of one request: attempts made so far and the time they took.

    Call `next_wait(error)` after each failed attempt. `attempts` counts the attempts made;
    `gave_up` is one human line saying why, once `next_wait` has returned None.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.attempts = 0
        self.gave_up = ""
        self._clock = clock
        self._rng = rng
        self._start = clock()

    def next_wait(self, error: BaseException) -> Wait | None:
        """The wait before the next attempt, after `error` ended the last one; None to give up."""
        self.attempts += 1
        policy = self.policy

        if not is_retryable(error):
            self.gave_up = _not_retried(error)
            return None
        if self.attempts >= policy.max_attempts:
            self.gave_up = _out_of_attempts(policy.max_attempts)
            return None

        seconds: float | None = _server_wait_for(error, policy)
        source: Literal["server", "backoff"] = "server"
        if seconds is None:
            seconds, source = self._backoff(), "backoff"

        left = policy.budget - self.elapsed()
        if seconds > left:
            self.gave_up = _over_budget(seconds, source, left, policy.budget)
            return None

        return Wait(reason=_reason(error), seconds=seconds, attempt=self.attempts, source=source)

    def elapsed(self) -> float:
        """Seconds since the schedule was made, by its clock."""
        return self._clock() - self._start

    def summary(self) -> str:
        """How much was tried, for error messages: "after 4 attempts over 37 s"."""
        attempts = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        return f"after {attempts} over {_seconds(self.elapsed())} s"

    def _backoff(self) -> float:
        policy = self.policy
        try:
            grown = policy.initial_wait * policy.multiplier ** (self.attempts - 1)
        except OverflowError:
            grown = math.inf if policy.initial_wait > 0 else 0.0
        full = min(policy.max_wait, grown)

        # Clamped, so a careless rng cannot push the wait past the cap.
        draw = min(max(self._rng(), 0.0), 1.0)
        return full * (1 - policy.jitter + policy.jitter * draw)


def is_retryable(error: BaseException) -> bool:
    """Whether a failed attempt may be tried again.

    True for a retryable `ConnectionFailed` (raised only before any byte of the answer; a host
    name that does not resolve is not retried), and for
    an `APIError` whose status is in `RETRY_STATUSES`. Never for a `StreamError`: the answer had
    begun, and replaying it silently could duplicate what the caller already received.
    """
    if isinstance(error, StreamError):
        return False
    if isinstance(error, ConnectionFailed):
        return error.retryable
    return isinstance(error, APIError) and error.status in RETRY_STATUSES


def server_wait(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """The wait in seconds a response's headers ask for, or None when they ask for none.

    Read in order: `retry-after-ms` (milliseconds, as OpenAI-style servers send it), then
    `Retry-After` as delta-seconds or as an HTTP date (RFC 9110 section 10.2.3), measured from
    `now` (default: the current UTC time); a date in the past means 0. Names match in any case;
    values that are negative, not finite, or not numbers or dates are ignored.
    """
    lowered = {name.lower(): value for name, value in headers.items()}

    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000

    retry_after = lowered.get("retry-after")
    if retry_after is None:
        return None
    seconds = _number(retry_after)
    if seconds is not None:
        return seconds
    return _until_date(retry_after, now)


def _number(value: str | None) -> float | None:
    if value is None or not _NUMBER.fullmatch(value.strip()):
        return None
    number = float(value.strip())
    return number if math.isfinite(number) else None


def _until_date(value: str, now: datetime | None) -> float | None:
    try:
        # Imported here: email.utils costs every `m2` start some milliseconds, dates are rare.
        from email.utils import parsedate_to_datetime

        date = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None

    # HTTP dates are always GMT; the obsolete asctime form carries no zone at all.
    if date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return max(0.0, (date - now).total_seconds())


def _server_wait_for(error: BaseException, policy: RetryPolicy) -> float | None:
    if not isinstance(error, APIError):
        return None
    given = server_wait(error.headers)
    if given is not None:
        return given

    # The older serverless API's estimate of the load time; an estimate of about 0 from a model
    # still loading would spend the attempts at once, so it waits at least initial_wait.
    if isinstance(error, ModelLoadingError) and error.estimated_time is not None:
        estimate = error.estimated_time
        if math.isfinite(estimate) and estimate >= 0:
            return max(estimate, policy.initial_wait)
    return None


def _reason(error: BaseException) -> str:
    if isinstance(error, ModelLoadingError):
        return f"model is loading ({error.status})"
    if isinstance(error, ConnectionFailed):
        return error.reason
    if not isinstance(error, APIError):
        return "could not connect"
    if error.status == 429:
        return "rate limited (429)"
    if error.status == 408:
        return "request timeout (408)"
    return f"server error ({error.status})"


def _not_retried(error: BaseException) -> str:
    if isinstance(error, StreamError):
        return "the answer had already begun, so it is not replayed"
    if isinstance(error, APIError):
        return f"a {error.status} answer is not retried"
    return f"{type(error).__name__} is not retried"


def _out_of_attempts(limit: int) -> str:
    if limit == 1:
        return "retries are turned off"
    return f"reached the limit of {limit} attempts"


def _over_budget(seconds: float, source: str, left: float, budget: float) -> str:
    total = f"the {_seconds(budget)} s retry budget"
    if left <= 0:
        return f"{total} is used up"
    asked = "the server asked to wait" if source == "server" else "the next backoff wait is"
    return f"{asked} {_seconds(seconds)} s, more than the {_seconds(left)} s left of {total}"


def _seconds(value: float) -> str:
    # Whole seconds from 10 up; one decimal below, without a trailing ".0".
    if value >= 10:
        return f"{value:.0f}"
    return f"{round(value, 1):g}"
