"""Configuration of a backtest: execution timing, rebalance schedule, costs, guardrails.

:class:`BacktestConfig` is what :func:`~quantdesk.quant_core.backtest.run_backtest` and
:func:`~quantdesk.quant_core.backtest_engine.backtest_arrays` trade by. Its validators are
the cost guardrail: a run with zero trading costs is refused unless it is declared a gross
study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quantdesk.quant_core.costs import (
    CostModel,
    config_error,
)
from quantdesk.quant_core.errors import ConfigError

if TYPE_CHECKING:
    pass

__all__ = ["BacktestConfig", "BacktestWarning", "Execution", "Rebalance", "coerce_config"]

Execution = Literal["next_close", "next_open"]
Rebalance = Literal["daily", "weekly", "monthly"]


class BacktestWarning(UserWarning):
    """A backtest input was adjusted (e.g. a target on a name without a price was set to 0)."""


class BacktestConfig(BaseModel):
    """How a backtest trades and what it pays.

    Attributes:
        execution: ``"next_close"`` or ``"next_open"`` of the session after the decision.
        rebalance: ``"daily"``, ``"weekly"`` (last session of each ISO week) or ``"monthly"``
            (last session of each month): the decision dates at which the latest target
            weights are re-established.
        costs: The :class:`~quantdesk.quant_core.costs.CostModel` (on by default).
        capital: Starting capital in currency; needed by the impact model only.
        gross_study: Allow a run without trading costs (``costs`` then default to zero).
        price_column: ``"auto"`` (``adj_close`` when present, else ``close``), ``"close"``
            or ``"adj_close"``.

    Raises:
        ConfigError: An invalid value, zero trading costs without ``gross_study=True``,
            costs with ``gross_study=True``, or impact without ``capital``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    execution: Execution = "next_close"
    rebalance: Rebalance = "daily"
    costs: CostModel = Field(default_factory=CostModel)
    capital: float | None = Field(default=None, gt=0.0)
    gross_study: bool = False
    price_column: Literal["auto", "close", "adj_close"] = "auto"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(
                exc,
                "backtest configuration",
                "see BacktestConfig: execution in ('next_close', 'next_open'), rebalance in "
                "('daily', 'weekly', 'monthly'), non-negative costs, capital > 0.",
            ) from None

    @model_validator(mode="before")
    @classmethod
    def _gross_study_costs(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("gross_study") and "costs" not in data:
            return {**data, "costs": CostModel.zero()}
        return data

    @model_validator(mode="after")
    def _guardrails(self) -> BacktestConfig:
        if self.gross_study and not self.costs.is_zero:
            raise ValueError(
                "gross_study=True but costs are set; a gross study charges nothing "
                "(drop gross_study to charge them)"
            )
        if not self.gross_study and not self.costs.has_trading_costs:
            raise ValueError(
                "every trading cost is zero, which overstates any strategy that trades; "
                "set gross_study=True to study gross returns on purpose"
            )
        if self.costs.impact_coef > 0 and self.capital is None:
            raise ValueError(
                "the impact model needs the capital in currency (e.g. capital=1e7) to "
                "compare trade sizes with the average dollar volume"
            )
        return self


def coerce_config(
    config: BacktestConfig | Mapping[str, Any] | None = None, **overrides: Any
) -> BacktestConfig:
    """Return a :class:`BacktestConfig` from a config, a mapping or defaults, plus overrides.

    Raises:
        ConfigError: The result is invalid (the message names the field).
    """
    if config is None and not overrides:
        return BacktestConfig()
    if isinstance(config, BacktestConfig):
        base = config.model_dump(exclude_unset=True)
    elif config is None or isinstance(config, Mapping):
        base = dict(config or {})
    else:
        raise ConfigError(
            f"Expected a BacktestConfig or a dict as config, got {type(config).__name__}.",
            fix="pass BacktestConfig(execution='next_open', ...) or a dict of its fields.",
        )
    return BacktestConfig(**{**base, **overrides})
