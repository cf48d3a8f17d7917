"""Retrieval metrics in NumPy: R@1/5/10, mAP and mINP with IRRA's formulas, computed without sorting whole rows.

Conventions (DESIGN §9):
- `similarity[q, g]` scores gallery item g for query q; larger is better. Text→image uses the
  [texts, images] matrix; image→text is the same call on its transpose (or on `similarity_chunks` with the
  roles of the features swapped).
- **Ties are broken by gallery order:** among equal scores the lower gallery index ranks first, so the
  0-based rank of gallery item j is #{l: s_l > s_j} + #{l < j: s_l = s_j}. This is what a stable descending
  argsort gives.
- With r_1 < … < r_n the 0-based ranks of a query's n positives:
  R@k = 1[r_1 < k], AP = (1/n) Σ_m m / (r_m + 1), INP = n / (r_n + 1) (irra_and_peers.md §1f);
  every figure is a mean over queries, in percent.
- **Queries with no positive in the gallery** (IRRA divides by zero) count as misses for R@k and are left
  out of mAP and mINP; a warning gives their number. If no query has a positive, `rank_metrics` raises.

`rank_metrics` walks the queries in row blocks (views of an array, or the blocks of a generator such as
`similarity_chunks`, so the whole matrix need never exist). It finds a query's positive ranks by sorting only
the gallery scores at or above its hardest positive's score and binary-searching the positive scores in them:
the extra memory is O(gallery) per query, and the cost falls as retrieval gets better.
`rank_metrics_argsort` is the direct transcription of IRRA's `rank()` with a stable full argsort, kept as
the reference for tests and benchmarks.
"""
import warnings

import numpy as np

__all__ = ["rank_metrics", "rank_metrics_argsort", "similarity_chunks", "format_table", "METRIC_NAMES"]

METRIC_NAMES = ("R1", "R5", "R10", "mAP", "mINP")
_RECALL_KS = (1, 5, 10)
_CHUNK_ELEMENTS = 1 << 24          # default chunk: ~16M scores (64 MB of float32) per block


def similarity_chunks(query_feats, gallery_feats, chunk):
    """Yield cosine-similarity row blocks `l2n(query_feats[a:b]) @ l2n(gallery_feats).T`, `chunk` rows at a time.

    Feed the generator to `rank_metrics` to rank without ever holding the whole [Nq, Ng] matrix.
    """
    def l2n(x):
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    gallery_t = l2n(gallery_feats).T.copy()
    for start in range(0, len(query_feats), chunk):
        yield l2n(query_feats[start:start + chunk]) @ gallery_t


def _query_blocks(similarity, chunk_size):
    """Row blocks of an array (views, `chunk_size` rows each) or the blocks of an iterable, as arrays."""
    if isinstance(similarity, np.ndarray):
        if similarity.ndim != 2:
            raise ValueError(f"similarity must be 2-D [queries, gallery], got shape {similarity.shape}")
        chunk = chunk_size or max(1, _CHUNK_ELEMENTS // max(similarity.shape[1], 1))
        return (similarity[a:a + chunk] for a in range(0, similarity.shape[0], chunk))
    return (np.asarray(block) for block in similarity)


def _positive_ranks(row, positives):
    """Sorted 0-based stable ranks of the gallery items `positives` (ascending indices) in one query's `row`."""
    scores = row[positives]
    # Only items scoring at least the hardest positive can rank above any positive.
    candidates = np.sort(row[row >= scores.min()])
    above_or_equal = np.searchsorted(candidates, scores, side="right")
    ranks = len(candidates) - above_or_equal
    tied = above_or_equal - np.searchsorted(candidates, scores, side="left") > 1
    for m in np.flatnonzero(tied):  # exact ties with other items: count those earlier in the gallery
        ranks[m] += np.count_nonzero(row[:positives[m]] == scores[m])
    return np.sort(ranks)


def _recall_keys(max_rank):
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    return [k for k in _RECALL_KS if k <= max_rank]


def _summarise(first_ranks, ap, inp, max_rank, n_missing):
    """Percent figures from per-query first-positive ranks (misses: a huge rank) and AP/INP of answerable queries."""
    if len(ap) == 0:
        raise ValueError("no query has a positive in the gallery: mAP and mINP are undefined")
    if n_missing:
        warnings.warn(f"{n_missing} of {len(first_ranks)} queries have no positive in the gallery; "
                      "they count as misses for R@k and are left out of mAP and mINP", stacklevel=3)
    out = {f"R{k}": float(np.mean(first_ranks < k) * 100) for k in _recall_keys(max_rank)}
    out["mAP"] = float(np.mean(ap) * 100)
    out["mINP"] = float(np.mean(inp) * 100)
    return out


def rank_metrics(similarity, query_pids, gallery_pids, max_rank=10, chunk_size=None):
    """{"R1", "R5", "R10", "mAP", "mINP"} in percent (R@k only for k <= max_rank) from [Nq, Ng] scores.

    `similarity` is a NumPy array, or an iterable of consecutive row blocks (e.g. `similarity_chunks`);
    `chunk_size` rows of an array are processed at a time (default: ~16M scores per chunk).
    """
    _recall_keys(max_rank)
    query_pids, gallery_pids = np.asarray(query_pids), np.asarray(gallery_pids)
    # Group the gallery by identity once: positives of a query = one slice of `by_pid`.
    uniq, inverse = np.unique(gallery_pids, return_inverse=True)
    by_pid = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(uniq)))])
    slot = np.clip(np.searchsorted(uniq, query_pids), 0, max(len(uniq) - 1, 0))
    known = (uniq[slot] == query_pids) if len(uniq) else np.zeros(len(query_pids), bool)

    miss = np.iinfo(np.int64).max
    first_ranks = np.full(len(query_pids), miss, dtype=np.int64)
    ap, inp = [], []
    q = 0
    for block in _query_blocks(similarity, chunk_size):
        if block.ndim != 2 or block.shape[1] != len(gallery_pids):
            raise ValueError(f"similarity block of shape {block.shape} does not match {len(gallery_pids)} gallery pids")
        if block.size and np.isnan(block.min()):          # min() propagates NaN without a temporary mask
            raise ValueError(f"similarity rows {q}..{q + len(block) - 1} contain NaN")
        for row in block:
            if q >= len(query_pids):
                raise ValueError(f"similarity has more rows than the {len(query_pids)} query pids")
            if known[q]:
                ranks = _positive_ranks(row, by_pid[bounds[slot[q]]:bounds[slot[q] + 1]])
                n = len(ranks)
                first_ranks[q] = ranks[0]
                ap.append(np.mean(np.arange(1, n + 1) / (ranks + 1)))
                inp.append(n / (ranks[-1] + 1))
            q += 1
    if q != len(query_pids):
        raise ValueError(f"similarity has {q} rows but there are {len(query_pids)} query pids")
    return _summarise(first_ranks, np.array(ap), np.array(inp), max_rank, int((~known).sum()))


def _irra_rank(similarity, query_pids, gallery_pids):
    """IRRA's `rank()` arithmetic on a block of rows: (first-positive ranks, AP and INP of answerable rows)."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    matches = gallery_pids[order] == query_pids[:, None]
    num_rel = matches.sum(1)
    has = num_rel > 0
    first_ranks = np.where(has, matches.argmax(1), np.iinfo(np.int64).max)
    precision = np.cumsum(matches, axis=1) / np.arange(1, matches.shape[1] + 1)
    ap = (precision * matches).sum(1)[has] / num_rel[has]
    last = matches.shape[1] - 1 - matches[:, ::-1].argmax(1)
    return first_ranks, ap, num_rel[has] / (last[has] + 1)


def rank_metrics_argsort(similarity, query_pids, gallery_pids, max_rank=10, chunk_size=None):
    """The reference: IRRA's `rank()` in NumPy with a stable descending full argsort of every row.

    It needs ~40 bytes per score; `chunk_size` rows at a time (default: all, as IRRA) bound that.
    """
    similarity = np.asarray(similarity)
    query_pids, gallery_pids = np.asarray(query_pids), np.asarray(gallery_pids)
    chunk = chunk_size or max(len(similarity), 1)
    parts = [_irra_rank(similarity[a:a + chunk], query_pids[a:a + chunk], gallery_pids)
             for a in range(0, len(similarity), chunk)]
    first_ranks, ap, inp = (np.concatenate(p) for p in zip(*parts))
    miss = int((first_ranks == np.iinfo(np.int64).max).sum())
    return _summarise(first_ranks, ap, inp, max_rank, miss)


def format_table(metrics_by_direction):
    """An aligned text table, one row per direction (e.g. {"t2i": {...}, "i2t": {...}}), 2 decimals."""
    names = [n for n in METRIC_NAMES if any(n in m for m in metrics_by_direction.values())]
    width = max([4] + [len(d) for d in metrics_by_direction])
    lines = [" ".join([f"{'':<{width}}"] + [f"{n:>7}" for n in names])]
    for direction, metrics in metrics_by_direction.items():
        cells = [f"{metrics[n]:7.2f}" if n in metrics else f"{'-':>7}" for n in names]
        lines.append(" ".join([f"{direction:<{width}}"] + cells))
    return "\n".join(lines)
