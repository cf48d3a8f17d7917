"""Datasets (readers, synthetic generator) and the MindSpore input pipeline; names load on first use.

Lazy so that `vpmnet synth` and `vpmnet data-info` do not pay for importing MindSpore.
"""
import importlib

_EXPORTS = {
    "load_dataset": "vpmnet.data.datasets",
    "DatasetSplits": "vpmnet.data.datasets",
    "EvalSplit": "vpmnet.data.datasets",
    "TrainSample": "vpmnet.data.datasets",
    "DatasetError": "vpmnet.data.datasets",
    "build_train_loader": "vpmnet.data.pipeline",
    "build_gallery_loader": "vpmnet.data.pipeline",
    "build_query_loader": "vpmnet.data.pipeline",
    "iterate_batches": "vpmnet.data.pipeline",
    "steps_per_epoch": "vpmnet.data.pipeline",
    "PADDING_PID": "vpmnet.data.pipeline",
    "preprocess_image": "vpmnet.data.transforms",
    "load_image": "vpmnet.data.transforms",
    "CorruptImageError": "vpmnet.data.transforms",
    "mask_tokens": "vpmnet.data.masking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vpmnet.data' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
