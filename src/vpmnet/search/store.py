"""The gallery index file: image embeddings with their paths, content hashes and the model's fingerprint.

Format `vpmnet-index/1`: one safetensors file (https://huggingface.co/docs/safetensors), any name
(`.safetensors` suggested), readable with the `safetensors` package in any language:

| tensor         | dtype            | shape   | content                                                          |
|----------------|------------------|---------|------------------------------------------------------------------|
| `embeddings`   | float16, float32 | [N, D]  | L2-normalised image embeddings; row i belongs to image i         |
| `sha256`       | uint8            | [N, 32] | SHA-256 of image i's file bytes (what `--append` compares)       |
| `path_bytes`   | uint8            | [B]     | the absolute paths, encoded with the file-system encoding, concatenated |
| `path_offsets` | int64            | [N + 1] | path i is `path_bytes[path_offsets[i]:path_offsets[i + 1]]`      |

The header's `__metadata__` maps `"vpmnet_index"` to a JSON object: `format` ("vpmnet-index/1"),
`fingerprint` (the model's weight fingerprint: searching with another model is refused), `model` (the
absolute path of the checkpoint or export folder that built it, the default model of `vpmnet search`),
`embed_dim` (D), `count` (N) and `dtype`. Scores are dot products of these rows with L2-normalised text
embeddings (cosine similarity). Each image's content appears once: a second file with the same bytes is
not indexed again. The file is replaced atomically (written beside it, then renamed), so an interrupted
`vpmnet index` leaves the previous index whole.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import List

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from vpmnet.checkpoint import atomic_write

FORMAT = "vpmnet-index/1"
METADATA_KEY = "vpmnet_index"
DTYPES = ("float16", "float32")


@dataclass
class GalleryIndex:
    embeddings: np.ndarray      # [N, D] float16 or float32, rows of unit length
    sha256: np.ndarray          # [N, 32] uint8
    paths: List[str]
    fingerprint: str
    model: str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dtype(self) -> str:
        return self.embeddings.dtype.name

    def header(self) -> dict:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "model": self.model,
                "embed_dim": int(self.embeddings.shape[1]), "count": len(self), "dtype": self.dtype}

    def digests(self) -> set:
        """The content hashes as a set of 32-byte strings (for membership tests)."""
        return {row.tobytes() for row in self.sha256}

    def extended(self, embeddings: np.ndarray, sha256: np.ndarray, paths: List[str]) -> "GalleryIndex":
        """A new index with these entries appended, stored in this index's dtype."""
        return GalleryIndex(np.concatenate([self.embeddings, embeddings.astype(self.embeddings.dtype, copy=False)]),
                            np.concatenate([self.sha256, sha256]), self.paths + list(paths), self.fingerprint,
                            self.model)


def empty(embed_dim: int, dtype: str, fingerprint: str, model: str) -> GalleryIndex:
    return GalleryIndex(np.zeros((0, embed_dim), dtype), np.zeros((0, 32), np.uint8), [], fingerprint, model)


def write(path: str, index: GalleryIndex) -> None:
    """Replace `path` atomically with `index`."""
    encoded = [os.fsencode(p) for p in index.paths]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(p) for p in encoded], out=offsets[1:])
    tensors = {
        "embeddings": np.ascontiguousarray(index.embeddings),
        "sha256": np.ascontiguousarray(index.sha256, dtype=np.uint8),
        "path_bytes": np.frombuffer(b"".join(encoded), np.uint8),
        "path_offsets": offsets,
    }
    metadata = {METADATA_KEY: json.dumps(index.header())}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_header(path: str) -> dict:
    """The JSON header of an index file, without reading its tensors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"index not found: {path}")
    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a vpmnet index (unreadable as safetensors: {exc})") from exc
    header = json.loads(metadata.get(METADATA_KEY, "{}"))
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vpmnet index of format {FORMAT} (found {header.get('format')!r}); "
                         "indexes are written by `vpmnet index`")
    return header


def read(path: str) -> GalleryIndex:
    header = read_header(path)
    with safe_open(path, framework="numpy") as f:
        embeddings = f.get_tensor("embeddings")
        sha256 = f.get_tensor("sha256")
        path_bytes = f.get_tensor("path_bytes").tobytes()
        offsets = f.get_tensor("path_offsets")
    paths = [os.fsdecode(path_bytes[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    if not (len(embeddings) == len(sha256) == len(paths) == header["count"]):
        raise ValueError(f"{path}: inconsistent index ({len(embeddings)} embeddings, {len(sha256)} hashes, "
                         f"{len(paths)} paths, header count {header['count']})")
    return GalleryIndex(embeddings, sha256, paths, header["fingerprint"], header["model"])
