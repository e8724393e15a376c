"""Merge several rankings of the same ids into one (reciprocal rank fusion).

The vector store and the keyword index score chunks on scales that cannot be compared
(a cosine distance, a BM25 sum), so only the ranks are used: an id gets
``1 / (k + rank)`` from every ranking it appears in (rank 1-based), and the sums are
sorted. A large ``k`` flattens the head of each ranking; 60 is the value of the paper
(Cormack, Clarke and Büttcher, 2009) and of most search engines since. ``weights``
scale each ranking's share (weighted RRF), for when one retriever is known to be the
stronger one.

This module must never look at scores, texts or models, nor do I/O: it sees ids only.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    k: int = DEFAULT_K,
    limit: int | None = None,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse rankings into one, best first.

    An id listed twice in one ranking counts only at its first (best) place there.
    Equal scores keep the order in which the ids were first met, reading the rankings
    in order and each from its top, so the result never depends on hashing.

    Args:
        rankings: Each a list of ids, best first.
        k: The rank constant; must not be negative.
        limit: Keep at most this many ids (``None``: all of them).
        weights: One non-negative factor per ranking (``None``: all 1).

    Returns:
        ``(id, score)`` pairs, scores descending, each id once.

    Raises:
        ValueError: ``k``, ``limit`` or a weight is negative, or the weights do not
            match the rankings.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    factors = [1.0] * len(rankings) if weights is None else list(weights)
    if len(factors) != len(rankings) or any(w < 0 for w in factors):
        raise ValueError(f"need one non-negative weight per ranking, got {weights}")
    scores: dict[str, float] = {}  # dicts keep insertion order: first appearance
    for ranking, weight in zip(rankings, factors, strict=True):
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    # sorted() is stable, so ties stay in order of first appearance.
    fused = sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
    return fused if limit is None else fused[:limit]
