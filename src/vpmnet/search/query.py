"""`vpmnet search`: rank an index's images for text descriptions; print, JSON lines, contact sheet or HTML page."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

import numpy as np

from vpmnet.cli import CommandError
from vpmnet.search import store
from vpmnet.search.topk import build_faiss, cached_faiss, exact_topk, faiss_factory, faiss_topk

BACKENDS = ("exact", "faiss")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index file written by `vpmnet index`")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", action="append", metavar="TEXT", help="a description (repeat for several)")
    source.add_argument("--queries", metavar="FILE", help="a UTF-8 text file, one description per line")
    parser.add_argument("--topk", type=int, default=10, help="results per query (default 10)")
    parser.add_argument("--json", action="store_true", help='print one JSON object per query: {"query", "results"}')
    parser.add_argument("--sheet", metavar="OUT.png", help="write a contact sheet, one row per query")
    parser.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML page with thumbnails")
    parser.add_argument("--model", help="checkpoint or export folder (default: the one that built the index; "
                                        "its fingerprint must match the index's)")
    parser.add_argument("--backend", choices=BACKENDS, default="exact",
                        help="exact: chunked NumPy search; faiss: FAISS IVF (faiss-cpu), built once and cached "
                             "beside the index as INDEX.<key>.faiss")
    parser.add_argument("--nprobe", type=int, help="FAISS IVF lists visited per query (default: 1/8 of them)")


def read_queries(args) -> List[str]:
    if args.query:
        queries = [q.strip() for q in args.query]
    else:
        with open(args.queries, encoding="utf-8") as f:
            queries = [line.strip() for line in f]
    queries = [q for q in queries if q]
    if not queries:
        raise CommandError(f"no queries: {'--query is empty' if args.query else args.queries + ' has no non-blank line'}")
    return queries


def search_index(index: store.GalleryIndex, queries: np.ndarray, topk: int, backend: str = "exact",
                 index_path: Optional[str] = None, nprobe: Optional[int] = None):
    """(scores [Q, k], gallery rows [Q, k]) of L2-normalised query embeddings; -1 rows mark missing FAISS hits.

    The FAISS backend caches its index beside `index_path` (built in memory only without one).
    """
    if backend == "exact":
        return exact_topk(queries, index.embeddings, topk)
    if backend == "faiss":
        faiss_index = (cached_faiss(index_path, index) if index_path
                       else build_faiss(index.embeddings, faiss_factory(len(index), index.dtype)))
        return faiss_topk(faiss_index, queries, topk, nprobe)
    raise ValueError(f"unknown search backend {backend!r}; choose {' or '.join(BACKENDS)}")


def run(args) -> int:
    from vpmnet.inference import TEXT_BATCH, load

    if args.topk < 1:
        raise CommandError(f"--topk must be at least 1, got {args.topk}")
    if args.nprobe is not None and args.backend != "faiss":
        raise CommandError("--nprobe applies to --backend faiss only")
    header = store.read_header(args.index)
    queries = read_queries(args)
    model_path = args.model or header["model"]
    if not args.model and not os.path.exists(model_path):
        raise CommandError(f"{args.index} was built with {model_path}, which no longer exists; pass --model "
                           f"(a checkpoint or export of model {header['fingerprint']})")
    model = load(model_path)
    if model.fingerprint != header["fingerprint"]:
        raise CommandError(f"{args.index} holds embeddings of model {header['fingerprint']} ({header['model']}), "
                           f"but {model_path} is model {model.fingerprint}: scores across models are meaningless; "
                           "search with the index's model or rebuild the index with `vpmnet index`")
    index = store.read(args.index)
    # A batch shape fitted to the query count: this process compiles one graph anyway, so pad nothing.
    embedded = model.encode_texts(queries, batch_size=min(len(queries), TEXT_BATCH))
    try:
        scores, rows = search_index(index, embedded, args.topk, args.backend, args.index, args.nprobe)
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    results = [(query, [(rank, index.paths[row], float(score))
                        for rank, (row, score) in enumerate(zip(rows[q], scores[q]), start=1) if row >= 0])
               for q, query in enumerate(queries)]

    for query, hits in results:
        if args.json:
            print(json.dumps({"query": query, "results": [{"rank": rank, "path": path, "score": round(score, 6)}
                                                         for rank, path, score in hits]}, ensure_ascii=False))
        else:
            print(query)
            for rank, path, score in hits:
                print(f"  {rank:>3}  {score:.4f}  {path}")
    if args.sheet or args.html:
        from vpmnet.search import render

        if args.sheet:
            render.contact_sheet(results, args.sheet)
            print(f"contact sheet: {args.sheet}", file=sys.stderr)
        if args.html:
            render.html_page(results, args.html)
            print(f"HTML page: {args.html}", file=sys.stderr)
    return 0
