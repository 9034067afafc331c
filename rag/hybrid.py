"""Reciprocal rank fusion of dense and lexical rankings.

Reciprocal rank fusion (Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion outperforms
Condorcet and individual Rank Learning Methods", SIGIR 2009) scores each item by

    RRF(d) = sum_r  w_r / (k + rank_r(d))

over the rankings ``r`` that contain ``d`` (ranks from 1). The constant ``k = 60`` is the
paper's value: it damps the weight of the very first ranks so that an item ranked well by both
retrievers beats one ranked first by a single retriever. Fusion uses ranks only, so BM25 scores
and cosine similarities never need to be put on one scale. Optional weights ``w_r`` (default 1)
tilt the fusion towards one retriever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quantdesk.quant_core.errors import InputError

__all__ = ["RRF_K", "FusedItem", "reciprocal_rank_fusion"]

#: The rank constant of Cormack et al. (2009).
RRF_K = 60


@dataclass(frozen=True)
class FusedItem:
    """One item of a fused ranking.

    Attributes:
        item_id: The identifier that appeared in the input rankings.
        score: The fused score (higher is better).
        ranks: The item's 1-based rank in each input ranking, ``None`` where absent.
    """

    item_id: str
    score: float
    ranks: tuple[int | None, ...]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[FusedItem]:
    """Fuse several best-first rankings into one.

    Args:
        rankings: Each a best-first list of ids (duplicates within a ranking count once, at
            their best rank).
        k: Rank constant (60 as in Cormack et al. 2009); must be positive.
        weights: One non-negative weight per ranking; all 1 by default.
        limit: Keep only the best ``limit`` items.

    Returns:
        Items by decreasing score; ties go to the better best rank, then the smaller id, so
        the order is deterministic.

    Raises:
        InputError: ``k`` is not positive, or the weights do not match the rankings.
    """
    if k <= 0:
        raise InputError(f"RRF k={k} must be positive.", fix="use k=60 (Cormack et al. 2009).")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings) or any(w < 0 for w in weights):
        raise InputError(
            f"weights={list(weights)} must be {len(rankings)} non-negative numbers.",
            fix="pass one weight per ranking, or none for equal weights.",
        )
    scores: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    for position, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        for rank, item_id in enumerate(ranking, start=1):
            seen = ranks.setdefault(item_id, [None] * len(rankings))
            if seen[position] is not None:
                continue
            seen[position] = rank
            scores[item_id] = scores.get(item_id, 0.0) + weight / (k + rank)

    def order(item_id: str) -> tuple[float, int, str]:
        best = min(r for r in ranks[item_id] if r is not None)
        return (-scores[item_id], best, item_id)

    fused = [
        FusedItem(item_id=item_id, score=scores[item_id], ranks=tuple(ranks[item_id]))
        for item_id in sorted(scores, key=order)
    ]
    return fused if limit is None else fused[:limit]
