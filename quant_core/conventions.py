"""Conventions shared by the statistics modules, kept free of numpy and polars imports.

:mod:`~quantdesk.quant_core.sharpe_inference` is on the light path of a command-line tool call
(``quantdesk tool run deflated_sharpe``), so what it shares with the array-based modules
(:mod:`~quantdesk.quant_core.metrics`, :mod:`~quantdesk.quant_core.effective_trials`) lives
here rather than in them.
"""

from __future__ import annotations

import math
from typing import Any

from quantdesk.quant_core.errors import InputError

__all__ = ["PERIODS_PER_YEAR", "finite_float"]

PERIODS_PER_YEAR = 252
"""Trading sessions per year: the annualisation factor of daily returns."""


def finite_float(value: Any, name: str) -> float:
    """``float(value)``, refusing what is not a finite number.

    Raises:
        InputError: ``value`` is not a number, or is NaN or infinite (names ``name``).
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{name}={value!r} is not a number.", fix=f"pass {name} as a float."
        ) from None
    if not math.isfinite(out):
        raise InputError(f"{name}={value!r} is not finite.", fix=f"pass a finite {name}.")
    return out
