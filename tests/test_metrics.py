"""Retrieval metrics: hand-computed cases with ties, and agreement with the full stable-argsort reference."""
import numpy as np
import pytest

from vpmnet.metrics import format_table, rank_metrics, rank_metrics_argsort, similarity_chunks

# Gallery of six items; four queries. 0-based stable ranks worked out by hand (ties: lower gallery index first).
GALLERY = np.array([1, 2, 1, 3, 2, 1])
QUERIES = np.array([1, 2, 3, 2])
SIMILARITY = np.array([
    # order 1,3,0,2,4,5 -> positives 0,2,5 at ranks 2,3,5 (0 ties 2 and 4 and goes first)
    [0.5, 0.9, 0.5, 0.7, 0.5, 0.1],
    # all tied -> gallery order; positives 1,4 at ranks 1,4
    [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
    # order 4,3,5,0,1,2 -> positive 3 at rank 1 (it ties 5 and goes first)
    [0.2, 0.1, 0.0, 0.8, 0.9, 0.8],
    # positives 1,4 tied at the top -> ranks 0,1
    [0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
], dtype=np.float32)
HAND_AP = [(1 / 3 + 2 / 4 + 3 / 6) / 3, (1 / 2 + 2 / 5) / 2, 1 / 2, 1.0]
HAND_INP = [3 / 6, 2 / 5, 1 / 2, 1.0]
HAND = {"R1": 25.0, "R5": 100.0, "R10": 100.0, "mAP": np.mean(HAND_AP) * 100, "mINP": np.mean(HAND_INP) * 100}


@pytest.mark.parametrize("fn", [rank_metrics, rank_metrics_argsort])
def test_hand_built_case_with_ties(fn):
    got = fn(SIMILARITY, QUERIES, GALLERY)
    assert set(got) == {"R1", "R5", "R10", "mAP", "mINP"}
    for key, value in HAND.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("fn", [rank_metrics, rank_metrics_argsort])
def test_hand_built_deep_positive(fn):
    # 12 items, one positive below seven others and tied with the one before it: rank 8 (0-based)
    row = np.array([9, 8, 7, 6, 5, 4, 3, 2, 2, 1, 0, -1], dtype=np.float32)
    gallery = np.array([0] * 8 + [5] + [0] * 3)
    got = fn(row[None], [5], gallery)
    assert (got["R1"], got["R5"], got["R10"]) == (0.0, 0.0, 100.0)
    assert got["mAP"] == pytest.approx(100 / 9) and got["mINP"] == pytest.approx(100 / 9)
    assert fn(row[None], [5], gallery, max_rank=5) == {"R1": 0.0, "R5": 0.0, "mAP": got["mAP"], "mINP": got["mINP"]}


@pytest.mark.parametrize("fn", [rank_metrics, rank_metrics_argsort])
def test_queries_without_positive_are_misses_and_skipped_from_map(fn):
    similarity = np.vstack([SIMILARITY, np.linspace(1, 0, 6, dtype=np.float32)])
    with pytest.warns(UserWarning, match="1 of 5 queries have no positive"):
        got = fn(similarity, np.append(QUERIES, 42), GALLERY)
    assert got["R1"] == pytest.approx(20.0) and got["R5"] == pytest.approx(80.0)
    assert got["mAP"] == pytest.approx(HAND["mAP"]) and got["mINP"] == pytest.approx(HAND["mINP"])
    with pytest.raises(ValueError, match="no query has a positive"):
        fn(SIMILARITY, [7, 8, 9, 10], GALLERY)


def random_case(rng, nq, ng, ids, ties):
    gallery = rng.integers(0, ids, ng)
    queries = rng.choice(gallery, nq)
    scores = rng.standard_normal((nq, ng)) + 2.0 * (queries[:, None] == gallery[None, :])
    if ties:                                      # a coarse grid of values: many exact ties
        scores = np.round(scores * 2) / 2
    return scores.astype(np.float32), queries, gallery


@pytest.mark.filterwarnings("ignore:.*no positive in the gallery")   # i2t: some images' identities have no caption
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("nq,ng,ids", [(50, 40, 10), (200, 300, 60), (97, 64, 3)])
def test_random_matrices_match_full_argsort_reference(rng, nq, ng, ids, ties):
    similarity, queries, gallery = random_case(rng, nq, ng, ids, ties)
    expected = rank_metrics_argsort(similarity, queries, gallery)
    # the reference: IRRA's formulas over one stable argsort, re-derived here from the ranks
    order = np.argsort(-similarity, axis=1, kind="stable")
    matches = gallery[order] == queries[:, None]
    ranks = [np.flatnonzero(m) for m in matches]
    assert expected["R1"] == pytest.approx(100 * np.mean([r[0] < 1 for r in ranks]))
    assert expected["mAP"] == pytest.approx(100 * np.mean([np.mean(np.arange(1, len(r) + 1) / (r + 1)) for r in ranks]))
    assert expected["mINP"] == pytest.approx(100 * np.mean([len(r) / (r[-1] + 1) for r in ranks]))
    for chunk in (None, 1, 7):
        got = rank_metrics(similarity, queries, gallery, chunk_size=chunk)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-6), (key, chunk)
    # image -> text is the same call on the transpose
    i2t = rank_metrics(similarity.T, gallery, queries)
    i2t_expected = rank_metrics_argsort(similarity.T, gallery, queries)
    for key in i2t_expected:
        assert i2t[key] == pytest.approx(i2t_expected[key], abs=1e-6)


def test_float64_and_float16_scores_keep_their_own_ties(rng):
    similarity, queries, gallery = random_case(rng, 60, 80, 12, ties=False)
    for dtype in (np.float64, np.float16):
        s = similarity.astype(dtype)
        got, expected = rank_metrics(s, queries, gallery), rank_metrics_argsort(s, queries, gallery)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-6)


def test_similarity_chunks_stream_equals_full_matrix(rng):
    q, g = rng.standard_normal((45, 8)), rng.standard_normal((30, 8)) * 3
    queries, gallery = rng.integers(0, 6, 45), rng.integers(0, 6, 30)
    gallery[:6] = np.arange(6)                    # every query identity is in the gallery
    full = np.vstack(list(similarity_chunks(q, g, 45)))
    cosine = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    np.testing.assert_allclose(full, cosine, atol=1e-6)
    assert rank_metrics(similarity_chunks(q, g, 8), queries, gallery) == rank_metrics(full, queries, gallery)


def test_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="gallery pids"):
        rank_metrics(SIMILARITY, QUERIES, GALLERY[:5])
    with pytest.raises(ValueError, match="query pids"):
        rank_metrics(SIMILARITY, QUERIES[:3], GALLERY)
    with pytest.raises(ValueError, match="rows but"):
        rank_metrics(SIMILARITY, np.append(QUERIES, 1), GALLERY)
    bad = SIMILARITY.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rank_metrics(bad, QUERIES, GALLERY)


def test_format_table():
    table = format_table({"t2i": HAND, "i2t": {"R1": 1.0, "R5": 2.5, "R10": 3.125, "mAP": 4.0, "mINP": 100.0}})
    lines = table.splitlines()
    assert lines[0].split() == ["R1", "R5", "R10", "mAP", "mINP"]
    assert lines[1].split() == ["t2i", "25.00", "100.00", "100.00", f"{HAND['mAP']:.2f}", "60.00"]
    assert lines[2].split() == ["i2t", "1.00", "2.50", "3.12", "4.00", "100.00"]
    assert len({len(line) for line in lines}) == 1          # aligned columns
