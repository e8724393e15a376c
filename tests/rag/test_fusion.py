"""Reciprocal rank fusion, by properties: whatever the rankings, the result is sane."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.fusion import reciprocal_rank_fusion

pytestmark = pytest.mark.timeout(60)

IDS = st.text(max_size=8)  # "" and hostile ids are ids like any other
RANKINGS = st.lists(st.lists(IDS, max_size=30), max_size=6)


def test_a_chunk_found_by_both_retrievers_beats_one_found_by_one() -> None:
    vectors = ["paraphrase", "both", "noise"]
    keywords = ["exact-name", "both"]

    fused = reciprocal_rank_fusion([vectors, keywords], k=60)

    assert [chunk_id for chunk_id, _ in fused] == ["both", "paraphrase", "exact-name", "noise"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 62)
    assert reciprocal_rank_fusion([vectors, keywords], limit=2) == fused[:2]
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []


def test_negative_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="k must"):
        reciprocal_rank_fusion([["a"]], k=-1)
    with pytest.raises(ValueError, match="limit must"):
        reciprocal_rank_fusion([["a"]], limit=-1)


@given(rankings=RANKINGS, k=st.integers(0, 1000), limit=st.none() | st.integers(0, 40))
def test_the_fused_ranking_is_well_formed(
    rankings: list[list[str]], k: int, limit: int | None
) -> None:
    fused = reciprocal_rank_fusion(rankings, k=k, limit=limit)
    ids = [chunk_id for chunk_id, _ in fused]
    scores = [score for _, score in fused]
    assert len(ids) == len(set(ids)), "no duplicates"
    assert set(ids) <= {chunk_id for ranking in rankings for chunk_id in ranking}
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)
    if limit is not None:
        assert len(fused) <= limit
    else:
        assert set(ids) == {chunk_id for ranking in rankings for chunk_id in ranking}
    assert reciprocal_rank_fusion(rankings, k=k, limit=limit) == fused, "deterministic"


@given(rankings=RANKINGS, winner=IDS, k=st.integers(0, 1000))
def test_an_id_first_in_every_ranking_comes_first(
    rankings: list[list[str]], winner: str, k: int
) -> None:
    rankings = [[winner, *(i for i in ranking if i != winner)] for ranking in rankings]
    fused = reciprocal_rank_fusion(rankings, k=k)
    if rankings:
        assert fused[0][0] == winner


@given(ranking=st.lists(IDS, unique=True, max_size=50), k=st.integers(0, 1000))
def test_fusing_one_ranking_keeps_its_order(ranking: list[str], k: int) -> None:
    assert [chunk_id for chunk_id, _ in reciprocal_rank_fusion([ranking], k=k)] == ranking


@given(ranking=st.lists(IDS, max_size=50))
def test_a_repeated_id_counts_at_its_best_place_only(ranking: list[str]) -> None:
    fused = dict(reciprocal_rank_fusion([ranking], k=0))
    for chunk_id, score in fused.items():
        assert score == 1 / (ranking.index(chunk_id) + 1)


def test_a_weighted_ranking_counts_for_less() -> None:
    dense, keyword = ["a", "b"], ["b", "c"]
    assert reciprocal_rank_fusion([dense, keyword], k=3)[0][0] == "b"
    weighted = reciprocal_rank_fusion([dense, keyword], k=3, weights=[1.0, 0.1])
    assert [i for i, _ in weighted] == ["a", "b", "c"]


@pytest.mark.parametrize("weights", [[1.0], [1.0, -0.5], [1.0, 1.0, 1.0]])
def test_weights_must_match_the_rankings_and_not_be_negative(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="one non-negative weight per ranking"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=weights)
