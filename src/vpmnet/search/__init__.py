"""Text search over your own images: `store` (the index file), `topk` (exact and FAISS search), `index` and
`query` (the `vpmnet index` / `vpmnet search` commands), `render` (contact sheet and HTML page)."""
