"""What the SDK-backed adapters share: one retry policy, error translation, connection lifecycle.

:class:`~quantdesk.agents.anthropic_model.AnthropicModel` and
:class:`~quantdesk.agents.openai_model.OpenAIModel` differ in their wire formats, not in how a
call is attempted or how a failure is reported. Both SDKs raise the same family of exceptions
(``APITimeoutError``, ``APIStatusError``, ``APIConnectionError`` under ``APIError``), both are
built with ``max_retries=0`` so that :func:`~quantdesk.agents.retry.call_with_retry` is the only
retry loop (and every attempt can be counted), and both map an HTTP status to a
:class:`~quantdesk.agents.model.ProviderError` through
:func:`~quantdesk.agents.retry.classify_status`, which names the key variable on a 401.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, Self

from quantdesk.agents.model import ProviderError
from quantdesk.agents.retry import RetryAttempt, RetryPolicy, call_with_retry, classify_status

__all__ = ["SDKClientModel"]

_TIMEOUT_GRACE_S = 2.0
"""Added to the request timeout for the outer guard, so the SDK's own timeout fires first."""


class SDKClientModel:
    """Base of the adapters that call a provider through its official async SDK.

    A subclass sets, in its ``__init__``: ``provider`` (the id prefix), ``model_id``,
    ``base_url``, ``_key_variable`` (named in authentication errors), ``_sdk`` (the SDK
    module) and ``_client`` (its async client, built with ``max_retries=0``), then calls
    :meth:`_init_retry`. It implements :meth:`_status_message` and may override
    :meth:`_special_error`.
    """

    provider: str
    model_id: str
    base_url: str
    retry: RetryPolicy
    _key_variable: str
    _sdk: Any
    _client: Any
    _rng: random.Random | None
    _on_retry: Callable[[RetryAttempt], None] | None

    def _init_retry(
        self,
        retry: RetryPolicy | None,
        rng: random.Random | None,
        on_retry: Callable[[RetryAttempt], None] | None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._rng = rng
        self._on_retry = on_retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _status_message(self, exc: Any) -> str:
        """The provider's own error message from an ``APIStatusError``."""
        raise NotImplementedError

    def _special_error(self, exc: Exception) -> ProviderError | None:
        """A provider-specific translation tried before the ``malformed`` fallback."""
        return None

    def _translate(self, exc: Exception) -> ProviderError:
        """Map an SDK exception (or a JSON decoding error) to a :class:`ProviderError`."""
        sdk = self._sdk
        if isinstance(exc, sdk.APITimeoutError):
            return ProviderError("the request timed out", provider=self.provider, kind="timeout")
        if isinstance(exc, sdk.APIStatusError):
            return classify_status(
                self.provider,
                exc.status_code,
                self._status_message(exc),
                exc.response.headers,
                key_variable=self._key_variable,
            )
        if isinstance(exc, sdk.APIConnectionError):
            return ProviderError(
                f"cannot reach {self.base_url}", provider=self.provider, kind="connection"
            )
        special = self._special_error(exc)
        if special is not None:
            return special
        return ProviderError(
            f"malformed response ({type(exc).__name__}: {exc})",
            provider=self.provider,
            kind="malformed",
        )

    async def _send(self, create: Callable[[], Awaitable[Any]], timeout_s: float) -> Any:
        """Run ``create()`` under the retry policy, translating SDK failures.

        Args:
            create: Makes one SDK call (a new coroutine per attempt).
            timeout_s: The request's own timeout; the outer guard adds a short grace.
        """

        async def attempt() -> Any:
            try:
                return await create()
            except (self._sdk.APIError, json.JSONDecodeError) as exc:
                raise self._translate(exc) from exc

        return await call_with_retry(
            attempt,
            policy=self.retry,
            provider=self.provider,
            attempt_timeout_s=timeout_s + _TIMEOUT_GRACE_S,
            rng=self._rng,
            on_retry=self._on_retry,
        )
