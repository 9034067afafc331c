"""Usage accounting per call and per session, and a hard token / dollar budget.

A :class:`UsageLedger` records every model call of a session (tokens, cost from the price
table in :mod:`quantdesk.agents.model_catalog`, stop reason). With a :class:`Budget` it stops
the session cleanly:

* before a call whose estimated cost would exceed the budget (input tokens estimated from
  the request's size, output tokens from the mean of the session's previous calls), and
* right after a call that did exceed it (providers bill what they generated, so that call is
  recorded first).

Both raise :class:`BudgetExceededError` and leave the ledger consistent: a refused call is not
recorded, an over-budget call is recorded once, and the exception carries its response so the
caller can save the session's state with it. :class:`BudgetedModel` wraps any model with a
ledger so the agents need no accounting code of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.agents.messages import ModelRequest, ModelResponse, StreamEvent, Usage
from quantdesk.agents.model_catalog import model_info
from quantdesk.quant_core.errors import ConfigError, QuantdeskRuntimeError

if TYPE_CHECKING:
    from quantdesk.agents.model import Model

__all__ = [
    "Budget",
    "BudgetExceededError",
    "BudgetedModel",
    "CallRecord",
    "Price",
    "UsageLedger",
    "estimate_input_tokens",
]

LEDGER_VERSION = 1
# Rough English/JSON average; used only to stop *before* a call, never for billing.
_CHARS_PER_TOKEN = 4


class Price(BaseModel):
    """Dollars per million tokens (overrides the catalog, e.g. for a private deployment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_usd_per_mtok: float = Field(ge=0.0)
    output_usd_per_mtok: float = Field(ge=0.0)

    def cost(self, usage: Usage) -> float:
        """Dollar cost of ``usage``."""
        return (
            usage.input_tokens * self.input_usd_per_mtok
            + usage.output_tokens * self.output_usd_per_mtok
        ) / 1e6


class Budget(BaseModel):
    """A hard limit on a session's tokens (input + output) and/or dollars.

    Attributes:
        max_tokens: Total tokens the session may use; ``None``: no token limit.
        max_usd: Dollars the session may spend; ``None``: no dollar limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int | None = Field(default=None, gt=0)
    max_usd: float | None = Field(default=None, gt=0.0)


class BudgetExceededError(QuantdeskRuntimeError):
    """A session hit its budget. Not retryable; the ledger and session state stay intact.

    Attributes:
        when: ``"before"`` (the call was not made) or ``"after"`` (the call was made and
            recorded; ``response`` holds its answer).
        spent: Tokens used so far (including an over-budget call).
        spent_usd: Dollars spent so far (``None`` when a price is unknown).
        response: The over-budget call's response (``when == "after"``).
    """

    def __init__(
        self,
        message: str,
        *,
        when: Literal["before", "after"],
        spent: Usage,
        spent_usd: float | None,
        response: ModelResponse | None = None,
    ) -> None:
        self.when = when
        self.spent = spent
        self.spent_usd = spent_usd
        self.response = response
        super().__init__(
            message,
            retryable=False,
            fix="raise the session budget (/budget or QUANTDESK budget settings) and resume the "
            "session; its state was saved.",
        )


@dataclass(frozen=True)
class CallRecord:
    """One model call as accounted.

    Attributes:
        model: Resolved model id that answered.
        usage: Tokens billed.
        cost_usd: Dollars, ``None`` when the model's price is unknown.
        stop_reason: Why the model stopped.
    """

    model: str
    usage: Usage
    cost_usd: float | None
    stop_reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost_usd,
            "stop_reason": self.stop_reason,
        }


def estimate_input_tokens(request: ModelRequest) -> int:
    """Estimate a request's input tokens from its JSON size (about 4 characters a token)."""
    payload = request.model_dump(mode="json", include={"messages", "tools", "output_schema"})
    return math.ceil(len(json.dumps(payload, separators=(",", ":"))) / _CHARS_PER_TOKEN)


class UsageLedger:
    """Tokens and cost of every call of one session, with an optional hard budget.

    Args:
        budget: Limits; ``None`` records without limiting.
        prices: Per-model price overrides keyed by model id; otherwise the catalog's.

    Raises:
        ConfigError: (when checking) a dollar budget for a model whose price is unknown.
    """

    def __init__(self, budget: Budget | None = None, *, prices: dict[str, Price] | None = None):
        self.budget = budget or Budget()
        self._prices = dict(prices or {})
        self._calls: list[CallRecord] = []

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        """Every recorded call, in order."""
        return tuple(self._calls)

    @property
    def usage(self) -> Usage:
        """Tokens of the whole session."""
        total = Usage()
        for call in self._calls:
            total = total + call.usage
        return total

    @property
    def cost_usd(self) -> float | None:
        """Dollars of the whole session; ``None`` if any call's price is unknown."""
        costs = [call.cost_usd for call in self._calls]
        return None if any(c is None for c in costs) else float(sum(c for c in costs if c))

    def price(self, model_id: str) -> Price | None:
        """The price used for ``model_id`` (override, then catalog), or ``None``."""
        if model_id in self._prices:
            return self._prices[model_id]
        info = model_info(model_id)
        if info is None or not info.has_price:
            return None
        return Price(
            input_usd_per_mtok=info.input_usd_per_mtok or 0.0,
            output_usd_per_mtok=info.output_usd_per_mtok or 0.0,
        )

    def _need_price(self, model_id: str) -> Price | None:
        price = self.price(model_id)
        if price is None and self.budget.max_usd is not None:
            raise ConfigError(
                f"A dollar budget (max_usd={self.budget.max_usd}) cannot be enforced for model "
                f"{model_id!r}: its price is not in the catalog.",
                fix="set a token budget (max_tokens) instead, or pass prices={model_id: "
                "Price(...)} to the UsageLedger.",
            )
        return price

    def check_before(self, request: ModelRequest, model_id: str) -> None:
        """Refuse a call whose estimated usage would exceed the budget.

        Raises:
            BudgetExceededError: ``when="before"``; nothing is recorded.
            ConfigError: a dollar budget for a model without a known price.
        """
        if self.budget.max_tokens is None and self.budget.max_usd is None:
            return
        price = self._need_price(model_id)
        outputs = [call.usage.output_tokens for call in self._calls]
        expected_out = (
            min(request.max_tokens, math.ceil(sum(outputs) / len(outputs))) if outputs else 0
        )
        estimate = Usage(input_tokens=estimate_input_tokens(request), output_tokens=expected_out)
        spent = self.usage
        if self.budget.max_tokens is not None:
            projected = spent.total_tokens + estimate.total_tokens
            if projected > self.budget.max_tokens:
                raise self._error(
                    f"Token budget {self.budget.max_tokens:,} would be exceeded by the next call "
                    f"to {model_id!r}: {spent.total_tokens:,} used + about "
                    f"{estimate.total_tokens:,} estimated.",
                    "before",
                )
        if self.budget.max_usd is not None and price is not None:
            projected_usd = (self.cost_usd or 0.0) + price.cost(estimate)
            if projected_usd > self.budget.max_usd:
                raise self._error(
                    f"Dollar budget ${self.budget.max_usd:.4f} would be exceeded by the next "
                    f"call to {model_id!r}: ${self.cost_usd or 0.0:.4f} spent + about "
                    f"${price.cost(estimate):.4f} estimated.",
                    "before",
                )

    def record(self, response: ModelResponse) -> CallRecord:
        """Record a finished call, then stop if it took the session over budget.

        Raises:
            BudgetExceededError: ``when="after"``; the call is recorded and attached.
        """
        price = self.price(response.model)
        cost = None if price is None else price.cost(response.usage)
        entry = CallRecord(response.model, response.usage, cost, response.stop_reason)
        self._calls.append(entry)
        spent = self.usage
        if self.budget.max_tokens is not None and spent.total_tokens > self.budget.max_tokens:
            raise self._error(
                f"Token budget {self.budget.max_tokens:,} exceeded: {spent.total_tokens:,} used "
                f"after a call to {response.model!r}.",
                "after",
                response,
            )
        total_usd = self.cost_usd
        limit = self.budget.max_usd
        if limit is not None and total_usd is not None and total_usd > limit:
            raise self._error(
                f"Dollar budget ${limit:.4f} exceeded: ${total_usd:.4f} spent after a call to "
                f"{response.model!r}.",
                "after",
                response,
            )
        return entry

    def _error(
        self, message: str, when: Literal["before", "after"], response: ModelResponse | None = None
    ) -> BudgetExceededError:
        return BudgetExceededError(
            message, when=when, spent=self.usage, spent_usd=self.cost_usd, response=response
        )

    def summary(self) -> dict[str, Any]:
        """Session totals and the budget, as plain JSON data (``/budget``, reports)."""
        usage = self.usage
        return {
            "version": LEDGER_VERSION,
            "calls": len(self._calls),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "cost_usd": self.cost_usd,
            "budget": self.budget.model_dump(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to resume the ledger (persist with the session state)."""
        return {
            "version": LEDGER_VERSION,
            "budget": self.budget.model_dump(),
            "prices": {k: v.model_dump() for k, v in self._prices.items()},
            "calls": [call.to_dict() for call in self._calls],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageLedger:
        """Rebuild a ledger saved with :meth:`to_dict`.

        Raises:
            ConfigError: an unknown format version.
        """
        if data.get("version") != LEDGER_VERSION:
            raise ConfigError(
                f"Usage ledger version {data.get('version')!r} is not supported "
                f"(expected {LEDGER_VERSION}).",
                fix="start a new session or upgrade quantdesk.",
            )
        ledger = cls(
            Budget(**data["budget"]),
            prices={k: Price(**v) for k, v in data.get("prices", {}).items()},
        )
        for call in data["calls"]:
            usage = Usage(input_tokens=call["input_tokens"], output_tokens=call["output_tokens"])
            ledger._calls.append(
                CallRecord(call["model"], usage, call["cost_usd"], call["stop_reason"])
            )
        return ledger


class BudgetedModel:
    """A model whose every call goes through a :class:`UsageLedger`.

    Args:
        inner: The model to call.
        ledger: The session's ledger (shared by every model of the session).
    """

    def __init__(self, inner: Model, ledger: UsageLedger) -> None:
        self.inner = inner
        self.ledger = ledger

    @property
    def model_id(self) -> str:
        """The wrapped model's id."""
        return self.inner.model_id

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Check the budget, call the inner model, record its usage.

        Raises:
            BudgetExceededError: before the call, or after it (response attached).
        """
        self.ledger.check_before(req, self.model_id)
        response = await self.inner.request(req)
        self.ledger.record(response)
        return response

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the inner model; the usage is recorded when its ``done`` event arrives."""
        self.ledger.check_before(req, self.model_id)
        async for event in self.inner.stream(req):
            if event.kind == "done" and event.response is not None:
                self.ledger.record(event.response)
            yield event
