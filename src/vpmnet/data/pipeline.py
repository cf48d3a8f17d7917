"""MindSpore datasets for training (augment, tokenise, MLM-mask, shard, resume) and for gallery/query evaluation.

Training. The sampler fixes the epoch's global order (samplers.py). The row at global position p of epoch e
draws its augmentation from `default_rng([1, seed, e, p])` and its MLM corruption from
`default_rng([2, seed, e, p])`, so a row depends on nothing but (seed, epoch, position): not on the number
of workers, their scheduling, the world size, or where a run was resumed. A loader started at `start_step`
yields exactly the tail of the full epoch. A corrupt image is replaced by the next readable sample of the
same identity (then of the whole set), counted in `loader.skipped_images.count` and warned about.

Evaluation. Graph mode wants fixed shapes, so the last batch is padded to `batch_size` by repeating the last
real row with pid -1 (raw ids are never negative): the first `len(split.image_paths)` gallery rows and the
first `len(split.captions)` query rows are real. A corrupt image in the gallery is an error naming the file.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import warnings
from typing import Dict, Iterator, List, Sequence

import mindspore.dataset as ds
import numpy as np

from vpmnet.data.datasets import DatasetSplits, EvalSplit, TrainSample
from vpmnet.data.masking import mask_tokens
from vpmnet.data.samplers import TrainSampler
from vpmnet.data.transforms import CorruptImageError, augment_image, draw_augmentation, load_image, preprocess_image

TRAIN_COLUMNS = ("images", "caption_ids", "mlm_ids", "mlm_labels", "pids", "image_ids")
GALLERY_COLUMNS = ("images", "pids")
QUERY_COLUMNS = ("caption_ids", "pids")
PADDING_PID = -1
_IMAGE_STREAM = 1
_TEXT_STREAM = 2


def make_sampler(cfg, splits: DatasetSplits, world: int = 1) -> TrainSampler:
    return TrainSampler([s.pid for s in splits.train], cfg.data.sampler, cfg.train.batch_size,
                        cfg.data.num_instance, cfg.seed, world)


def steps_per_epoch(cfg, splits: DatasetSplits, world: int = 1) -> int:
    """Global steps per epoch: the same on every rank and in every epoch."""
    return make_sampler(cfg, splits, world).steps_per_epoch


class SkippedImages:
    """How many corrupt training images were met, counted across the loader's worker processes."""

    def __init__(self):
        self._count = multiprocessing.Value("i", 0)

    def __deepcopy__(self, memo):
        # MindSpore deep-copies the source when it builds an iterator; every copy must count into one place.
        return self

    @property
    def count(self) -> int:
        return self._count.value

    def add(self, error: CorruptImageError) -> None:
        with self._count.get_lock():
            self._count.value += 1
        warnings.warn(f"training: skipped a corrupt image ({error}); a readable sample of the same identity "
                      "takes its place", RuntimeWarning)


class TrainSource:
    """Random-access rows of one rank's share of an epoch: row k is the epoch's global position `positions[k]`."""

    def __init__(self, cfg, samples: List[TrainSample], tokenizer, epoch: int, order: np.ndarray,
                 positions: np.ndarray):
        self.samples = samples
        self.tokenizer = tokenizer
        self.epoch = epoch
        self.order = order
        self.positions = positions
        self.seed = cfg.seed
        self.image_size = tuple(cfg.model.image_size)
        self.img_aug = cfg.data.img_aug
        self.affine_aug = cfg.data.affine_aug
        self.mlm_probability = cfg.data.mlm_probability
        self.members: Dict[int, List[int]] = {}
        for index, sample in enumerate(samples):
            self.members.setdefault(sample.pid, []).append(index)
        self.skipped = SkippedImages()

    def __len__(self) -> int:
        return len(self.positions)

    def _candidates(self, index: int) -> Iterator[int]:
        """The sample itself, then the following samples of its identity, then the following samples of the set."""
        yield index
        same = self.members[self.samples[index].pid]
        at = same.index(index)
        yield from same[at + 1:] + same[:at]
        for offset in range(1, len(self.samples)):
            yield (index + offset) % len(self.samples)

    def _readable(self, index: int):
        unreadable = set()
        for candidate in self._candidates(index):
            sample = self.samples[candidate]
            if sample.path in unreadable:
                continue
            try:
                return sample, load_image(sample.path)
            except CorruptImageError as exc:
                unreadable.add(sample.path)
                self.skipped.add(exc)
        raise CorruptImageError("no image of the training set can be read")

    def __getitem__(self, k: int):
        position = int(self.positions[k])
        sample, image = self._readable(int(self.order[position]))
        image_rng = np.random.default_rng([_IMAGE_STREAM, self.seed, self.epoch, position])
        text_rng = np.random.default_rng([_TEXT_STREAM, self.seed, self.epoch, position])
        augmentation = draw_augmentation(image_rng, self.image_size, self.img_aug, self.affine_aug)
        caption_ids = np.asarray(self.tokenizer([sample.caption])[0], dtype=np.int32)
        mlm_ids, mlm_labels = mask_tokens(caption_ids, text_rng, self.tokenizer.mask_id,
                                          self.tokenizer.vocab_size, self.mlm_probability)
        return (augment_image(image, self.image_size, augmentation), caption_ids, mlm_ids, mlm_labels,
                np.int32(sample.pid), np.int32(sample.image_id))


def _generator_dataset(source, columns: Sequence[str], num_workers: int) -> ds.GeneratorDataset:
    # A random-access source without shuffle or sampler is read in index order, whatever the worker count.
    # MindSpore refuses more workers than cores.
    workers = max(1, min(int(num_workers), os.cpu_count() or 1))
    return ds.GeneratorDataset(source, column_names=list(columns), shuffle=False, num_parallel_workers=workers,
                               python_multiprocessing=workers > 1)


def build_train_loader(cfg, splits: DatasetSplits, tokenizer, epoch: int, rank: int = 0, world: int = 1,
                       start_step: int = 0) -> ds.Dataset:
    """Batches of `rank` for `epoch` from global step `start_step`, columns TRAIN_COLUMNS.

    images float32 [b,3,H,W], caption_ids / mlm_ids / mlm_labels int32 [b,L], pids / image_ids int32 [b],
    b = cfg.train.batch_size // world. `loader.skipped_images.count` is the number of corrupt images met.
    """
    sampler = make_sampler(cfg, splits, world)
    source = TrainSource(cfg, splits.train, tokenizer, epoch, sampler.epoch_order(epoch),
                         sampler.rank_positions(rank, start_step))
    loader = _generator_dataset(source, TRAIN_COLUMNS, cfg.data.num_workers)
    loader = loader.batch(sampler.local_batch_size, drop_remainder=True)
    loader.skipped_images = source.skipped
    return loader


def _padded_rows(count: int, batch_size: int, what: str) -> np.ndarray:
    """Row indices 0..count-1, then the last row repeated up to a multiple of batch_size."""
    if count == 0:
        raise ValueError(f"nothing to evaluate: the split has no {what}")
    total = -(-count // batch_size) * batch_size
    return np.minimum(np.arange(total), count - 1)


def _padded_pids(pids: Sequence[int], rows: np.ndarray) -> np.ndarray:
    out = np.asarray(pids, dtype=np.int32)[rows]
    out[len(pids):] = PADDING_PID
    return out


class GallerySource:
    """Gallery rows (eval transform, pid), padded to whole batches."""

    def __init__(self, split: EvalSplit, image_size: Sequence[int], batch_size: int):
        self.paths = split.image_paths
        self.rows = _padded_rows(len(self.paths), batch_size, "images")
        self.pids = _padded_pids(split.image_pids, self.rows)
        self.image_size = tuple(image_size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        return preprocess_image(self.paths[self.rows[k]], self.image_size), self.pids[k]


def build_gallery_loader(cfg, split: EvalSplit, batch_size: int) -> ds.Dataset:
    """(images float32 [B,3,H,W], pids int32 [B]) in gallery order; see the module docstring for padding."""
    source = GallerySource(split, cfg.model.image_size, batch_size)
    return _generator_dataset(source, GALLERY_COLUMNS, cfg.data.num_workers).batch(batch_size, drop_remainder=True)


def build_query_loader(cfg, split: EvalSplit, tokenizer, batch_size: int) -> ds.Dataset:
    """(caption_ids int32 [B,L], pids int32 [B]) in caption order; see the module docstring for padding."""
    rows = _padded_rows(len(split.captions), batch_size, "captions")
    caption_ids = np.asarray(tokenizer(split.captions), dtype=np.int32)[rows]
    data = (caption_ids, _padded_pids(split.caption_pids, rows))
    loader = ds.NumpySlicesDataset(data, column_names=list(QUERY_COLUMNS), shuffle=False)
    return loader.batch(batch_size, drop_remainder=True)


def iterate_batches(loader: ds.Dataset) -> Iterator[Dict[str, np.ndarray]]:
    """One pass of NumPy batches; a corrupt image in a worker surfaces as CorruptImageError (a ValueError).

    MindSpore re-raises errors from Python sources as RuntimeError with the worker's traceback inside; the
    original message is on the traceback's last `CorruptImageError:` line.
    """
    try:
        yield from loader.create_dict_iterator(num_epochs=1, output_numpy=True)
    except RuntimeError as exc:
        found = re.findall(r"CorruptImageError: (.+)", str(exc))
        if not found:
            raise
        raise CorruptImageError(found[-1]) from exc
