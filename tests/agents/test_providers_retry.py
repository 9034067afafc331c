"""The shared retry policy, status classification and the model-id registry."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.agents import model as model_module
from quantdesk.agents.messages import ModelResponse
from quantdesk.agents.model import ProviderError, get_model, register_model, resolve_model_id
from quantdesk.agents.retry import RetryPolicy, call_with_retry, classify_status, parse_retry_after
from quantdesk.quant_core.errors import ConfigError


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"Retry-After": "Sat, 21 Nov 2026 00:00:30 GMT"}, 30.0),
        ({"Retry-After": "Fri, 20 Nov 2026 23:00:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    assert parse_retry_after(headers, now=now) == expected


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "client", False),
        (401, "auth", False),
        (403, "auth", False),
        (404, "client", False),
        (408, "server", True),
        (409, "server", True),
        (422, "client", False),
        (429, "rate_limit", True),
        (500, "server", True),
        (503, "server", True),
        (529, "server", True),
    ],
)
def test_classify_status(status: int, kind: str, retryable: bool) -> None:
    error = classify_status("p", status, "msg")
    assert (error.kind, error.retryable, error.status_code) == (kind, retryable, status)


def test_seeded_backoff_delays_are_reproducible_and_bounded() -> None:
    policy = RetryPolicy(
        max_attempts=5, base_delay_s=1.0, multiplier=2.0, max_delay_s=5.0, jitter=0.25
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def always_503() -> None:
        raise ProviderError("busy", provider="p", kind="server", status_code=503)

    def run() -> list[float]:
        slept.clear()
        with pytest.raises(ProviderError):
            asyncio.run(
                call_with_retry(
                    always_503,
                    policy=policy,
                    provider="p",
                    attempt_timeout_s=None,
                    rng=random.Random(11),
                    sleep=sleep,
                )
            )
        return list(slept)

    first = run()
    assert first == run()
    assert len(first) == 4
    for delay, nominal in zip(first, [1.0, 2.0, 4.0, 5.0], strict=True):
        assert nominal * 0.75 <= delay <= nominal * 1.25


@settings(max_examples=60, deadline=None)
@given(
    retry_number=st.integers(min_value=1, max_value=30),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_backoff_never_exceeds_the_jittered_cap(
    retry_number: int, seed: int, jitter: float
) -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0, jitter=jitter)
    delay = policy.backoff_s(retry_number, random.Random(seed))
    assert 0.0 <= delay <= 8.0 * (1.0 + jitter) + 1e-9


def test_attempt_timeout_is_a_retryable_provider_error() -> None:
    calls = 0

    async def slow_then_fast() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(5)
        return "ok"

    async def no_sleep(_: float) -> None:
        return None

    result = asyncio.run(
        call_with_retry(
            slow_then_fast,
            policy=RetryPolicy(max_attempts=2),
            provider="p",
            attempt_timeout_s=0.05,
            rng=random.Random(0),
            sleep=no_sleep,
        )
    )
    assert (result, calls) == ("ok", 2)


def test_registry_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTDESK_MODEL", raising=False)
    assert resolve_model_id() == "offline"
    monkeypatch.setenv("QUANTDESK_MODEL", "anthropic:claude-haiku-4-5")
    assert resolve_model_id() == "anthropic:claude-haiku-4-5"
    assert resolve_model_id("openai:gpt-4.1") == "openai:gpt-4.1"
    # The default and the test doubles load lazily from their own modules.
    assert get_model("offline").model_id.startswith("offline")
    assert get_model("test:schema").model_id.startswith("test")

    class Echo:
        def __init__(self, name: str = "") -> None:
            self.model_id = f"echo:{name}" if name else "echo"

        async def request(self, req: object) -> ModelResponse:
            return ModelResponse(model=self.model_id, text="echo")

        def stream(self, req: object) -> object:
            raise NotImplementedError

    # Registered through the public function; monkeypatch removes the entry afterwards.
    monkeypatch.setitem(model_module._REGISTRY, "echo", "placeholder:unused")
    register_model("echo", Echo)
    assert get_model("echo").model_id == "echo"
    assert get_model("echo:loud").model_id == "echo:loud"
    with pytest.raises(ConfigError, match="Unknown model id"):
        get_model("nonesuch:model")
    with pytest.raises(ConfigError, match="no model name"):
        get_model("anthropic:")
