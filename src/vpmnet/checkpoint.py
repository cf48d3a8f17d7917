"""Checkpoints: safetensors weights with their record (config, progress, metrics) embedded and beside them as JSON.

A checkpoint is one file, `<name>.safetensors`, replaced atomically, so a crash at any moment leaves the
previous one whole. Its `__metadata__["vpmnet"]` holds the record; `<name>.json` is a readable copy.
Training checkpoints (`last`) also carry the optimizer state under the `optimizer.` prefix.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Dict, Optional, Tuple

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

FORMAT = "vpmnet-checkpoint/1"
OPTIMIZER_PREFIX = "optimizer."


def fingerprint(weights: Dict[str, np.ndarray]) -> str:
    """A content hash of the model weights: equal weights, equal fingerprint, whatever file holds them."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        array = np.ascontiguousarray(weights[name])
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def atomic_write(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    # mkstemp makes the file owner-only; give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def save(path: str, weights: Dict[str, np.ndarray], record: dict,
         optimizer: Optional[Dict[str, np.ndarray]] = None) -> dict:
    """Write `weights` (+ optimizer state) and `record` atomically; returns the record with format and fingerprint."""
    record = dict(record, format=FORMAT, fingerprint=fingerprint(weights))
    tensors = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    for name, value in (optimizer or {}).items():
        tensors[OPTIMIZER_PREFIX + name] = np.ascontiguousarray(value)
    metadata = {"vpmnet": json.dumps(record)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    sidecar = os.path.splitext(path)[0] + ".json"
    atomic_write(sidecar, lambda tmp: _write_text(tmp, json.dumps(record, indent=2)))
    return record


def read_record(path: str) -> dict:
    """The record embedded in a checkpoint, without loading its tensors."""
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    if "vpmnet" not in meta:
        raise ValueError(f"{path}: a safetensors file but not a vpmnet checkpoint (no 'vpmnet' metadata); "
                         "CLIP weights are converted with `vpmnet convert-clip`")
    record = json.loads(meta["vpmnet"])
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {record.get('format')!r}, this vpmnet reads {FORMAT!r}")
    return record


def load(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], dict]:
    """(model weights, optimizer state, record) of a checkpoint file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    record = read_record(path)
    weights, optimizer = {}, {}
    with safe_open(path, framework="numpy") as f:
        for key in f.keys():
            if key.startswith(OPTIMIZER_PREFIX):
                optimizer[key[len(OPTIMIZER_PREFIX):]] = f.get_tensor(key)
            else:
                weights[key] = f.get_tensor(key)
    return weights, optimizer, record


def resolve(path: str) -> str:
    """A checkpoint file from a file or a run folder (its `best`, else its `last`)."""
    if os.path.isdir(path):
        for name in ("best.safetensors", "last.safetensors"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"{path}: no best.safetensors or last.safetensors in this folder")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def assign(cell, weights: Dict[str, np.ndarray], source: str) -> None:
    """Copy `weights` into `cell`'s parameters; any missing, unexpected or mis-shaped name is an error."""
    import mindspore as ms

    params = dict(cell.parameters_and_names())
    missing = sorted(set(params) - set(weights))
    unexpected = sorted(set(weights) - set(params))
    mismatched = [f"{k}: file {tuple(weights[k].shape)} vs model {tuple(params[k].shape)}"
                  for k in sorted(set(params) & set(weights)) if tuple(weights[k].shape) != tuple(params[k].shape)]
    if missing or unexpected or mismatched:
        parts = [f"{label} ({len(items)}): {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
                 if items]
        raise ValueError(f"{source}: checkpoint does not fit the model; " + "; ".join(parts))
    for name, param in params.items():
        param.set_data(ms.Tensor(weights[name]))


def weights_of(cell) -> Dict[str, np.ndarray]:
    """Every parameter of `cell` as a NumPy array, by its name relative to `cell`.

    Relative names, not `Parameter.name`: wrapping a cell in another (the evaluation and export encoders
    do) prefixes the latter.
    """
    return {name: p.asnumpy() for name, p in cell.parameters_and_names()}
