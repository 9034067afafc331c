"""One retry policy for every provider call: exponential backoff with jitter.

The SDKs' own retries are switched off (``max_retries=0``) so that this is the only policy and
tests can count attempts. A call is retried when it fails with a retryable
:class:`~quantdesk.agents.model.ProviderError` (429, 408, 409, 5xx, timeouts, dropped
connections) and never on other 4xx answers, which a retry cannot fix. A ``Retry-After`` (or
``retry-after-ms``) header is honoured as the delay, up to ``max_retry_after_s``; beyond that the
error is raised at once rather than blocking a session for minutes. Every attempt has a hard
timeout, in addition to the SDK's own HTTP timeout.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.agents.model import ProviderError

__all__ = [
    "RetryAttempt",
    "RetryPolicy",
    "call_with_retry",
    "classify_status",
    "parse_retry_after",
]

_T = TypeVar("_T")

_RETRYABLE_4XX = frozenset({408, 409, 429})


class RetryPolicy(BaseModel):
    """How often and how long to retry a provider call.

    Attributes:
        max_attempts: Total attempts including the first (1 disables retries).
        base_delay_s: Delay before the second attempt, before jitter.
        multiplier: Growth of the delay per attempt.
        max_delay_s: Cap on a backoff delay.
        jitter: Relative spread of each backoff delay: the delay is drawn uniformly in
            ``[d * (1 - jitter), d * (1 + jitter)]``.
        max_retry_after_s: Longest ``Retry-After`` honoured; a longer one ends the retries.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=4, ge=1, le=20)
    base_delay_s: float = Field(default=1.0, ge=0.0)
    multiplier: float = Field(default=2.0, ge=1.0)
    max_delay_s: float = Field(default=30.0, ge=0.0)
    jitter: float = Field(default=0.25, ge=0.0, le=1.0)
    max_retry_after_s: float = Field(default=60.0, ge=0.0)

    def backoff_s(self, retry_number: int, rng: random.Random) -> float:
        """The jittered delay before retry number ``retry_number`` (1 for the first retry)."""
        delay = min(self.max_delay_s, self.base_delay_s * self.multiplier ** (retry_number - 1))
        return delay * (1.0 - self.jitter + 2.0 * self.jitter * rng.random())


@dataclass(frozen=True)
class RetryAttempt:
    """One failed attempt that will be retried.

    Attributes:
        attempt: Number of the failed attempt (1-based).
        delay_s: Seconds slept before the next attempt.
        error: The failure.
    """

    attempt: int
    delay_s: float
    error: ProviderError


def _as_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or date).

    Args:
        headers: Response headers (case-insensitive mappings such as httpx's, or a dict).
        now: Current time for HTTP-date values (defaults to the clock).

    Returns:
        The delay in seconds (never negative), or ``None`` when absent or unreadable.
    """
    if not headers:
        return None
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    # retry-after-ms is more precise; servers send it alongside Retry-After.
    milliseconds = _as_float(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000.0)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _as_float(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_status(
    provider: str,
    status_code: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    key_variable: str | None = None,
) -> ProviderError:
    """Turn an HTTP error status into a :class:`ProviderError` with the right retry class.

    Args:
        provider: Adapter name for the message.
        status_code: The HTTP status.
        message: The provider's error message (must not contain a key).
        headers: Response headers, read for ``Retry-After``.
        key_variable: Environment variable holding the key, named in the fix of a 401/403.
    """
    retry_after = parse_retry_after(headers)
    text = f"HTTP {status_code}: {message}"
    if status_code == 429:
        return ProviderError(
            text, provider=provider, kind="rate_limit", status_code=429, retry_after_s=retry_after
        )
    if status_code >= 500 or status_code in _RETRYABLE_4XX:
        return ProviderError(
            text,
            provider=provider,
            kind="server",
            status_code=status_code,
            retry_after_s=retry_after,
        )
    if status_code in (401, 403):
        return ProviderError(
            text,
            provider=provider,
            kind="auth",
            status_code=status_code,
            fix=f"check {key_variable or 'the API key'} and the account's access to this model.",
        )
    return ProviderError(
        text,
        provider=provider,
        kind="client",
        status_code=status_code,
        fix="the request was refused as invalid; check the model name and the request.",
    )


async def call_with_retry(
    attempt: Callable[[], Awaitable[_T]],
    *,
    policy: RetryPolicy,
    provider: str,
    attempt_timeout_s: float | None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[RetryAttempt], None] | None = None,
) -> _T:
    """Run ``attempt`` until it succeeds, fails for good, or the attempts run out.

    Args:
        attempt: Makes one call; raises :class:`ProviderError` on failure.
        policy: The retry policy.
        provider: Adapter name, for timeout errors.
        attempt_timeout_s: Hard bound on each attempt (``None``: only the SDK's timeout).
        rng: Source of jitter. ``None`` uses an unseeded generator on purpose: jitter exists
            to de-correlate clients, which one shared seed would undo. Tests pass a seeded one.
        sleep: Awaitable sleep, replaceable in tests.
        on_retry: Called before each sleep, e.g. to log the retry.

    Returns:
        What ``attempt`` returned.

    Raises:
        ProviderError: The last failure, when it is not retryable, asks for a longer wait
            than ``max_retry_after_s``, or the attempts are exhausted.
    """
    generator = rng if rng is not None else random.Random()
    number = 0
    while True:
        number += 1
        try:
            if attempt_timeout_s is None:
                return await attempt()
            async with asyncio.timeout(attempt_timeout_s):
                return await attempt()
        except TimeoutError as exc:
            error = ProviderError(
                f"no answer within {attempt_timeout_s} s", provider=provider, kind="timeout"
            )
            error.__cause__ = exc
        except ProviderError as exc:
            error = exc
        if not error.retryable or number >= policy.max_attempts:
            raise error
        if error.retry_after_s is not None:
            if error.retry_after_s > policy.max_retry_after_s:
                raise error
            delay = error.retry_after_s
        else:
            delay = policy.backoff_s(number, generator)
        if on_retry is not None:
            on_retry(RetryAttempt(attempt=number, delay_s=delay, error=error))
        await sleep(delay)
