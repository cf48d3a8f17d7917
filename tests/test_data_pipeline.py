"""The MindSpore input pipeline: columns, exact resume, rank slices, corrupt images, padded evaluation batches."""
import os

import numpy as np
import pytest

from fixtures_data import write_corrupt_image, write_dataset
from vpmnet.clip.tokenizer import load_tokenizer
from vpmnet.config import load_config
from vpmnet.data.datasets import load_dataset
from vpmnet.data.pipeline import (PADDING_PID, build_gallery_loader, build_query_loader, build_train_loader,
                                  iterate_batches, make_sampler, steps_per_epoch)
from vpmnet.data.synth import generate
from vpmnet.data.transforms import CorruptImageError, preprocess_image

IMAGE_SIZE = (64, 32)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """12 identities x 4 images at 64x32: 8 for training (64 captions), 2 for val, 2 for test."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    generate(root, identities=12, images_per_identity=4, seed=3, size=IMAGE_SIZE, val_identities=2,
             test_identities=2, workers=1)
    return root


def config(root, *overrides):
    return load_config(None, [f"data.root={root}", f"model.image_size={list(IMAGE_SIZE)}", "train.batch_size=8",
                              "data.num_workers=1", "data.affine_aug=true", "seed=5", *overrides])


def batches(cfg, splits, tokenizer, epoch=0, **kwargs):
    return list(iterate_batches(build_train_loader(cfg, splits, tokenizer, epoch, **kwargs)))


def assert_same(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_train_batches_hold_the_sampled_samples(synthetic, tokenizer):
    cfg = config(synthetic)
    splits = load_dataset("synthetic", synthetic)
    assert steps_per_epoch(cfg, splits) == 8 and steps_per_epoch(cfg, splits, world=2) == 8
    out = batches(cfg, splits, tokenizer, epoch=1)
    assert len(out) == 8
    first = out[0]
    assert list(first) == ["images", "caption_ids", "mlm_ids", "mlm_labels", "pids", "image_ids"]
    assert first["images"].shape == (8, 3, *IMAGE_SIZE) and first["images"].dtype == np.float32
    for key in ("caption_ids", "mlm_ids", "mlm_labels"):
        assert first[key].shape == (8, 77) and first[key].dtype == np.int32
    assert first["pids"].dtype == np.int32 and first["image_ids"].dtype == np.int32
    order = make_sampler(cfg, splits).epoch_order(1)
    samples = [splits.train[i] for i in order[:8]]
    np.testing.assert_array_equal(first["caption_ids"], tokenizer([s.caption for s in samples]))
    np.testing.assert_array_equal(first["pids"], [s.pid for s in samples])
    np.testing.assert_array_equal(first["image_ids"], [s.image_id for s in samples])
    labels, ids, mlm = (np.concatenate([b[k] for b in out]) for k in ("mlm_labels", "caption_ids", "mlm_ids"))
    chosen = labels != 0
    assert chosen.any(axis=1).all()                      # every caption has an MLM target
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    np.testing.assert_array_equal(mlm[~chosen], ids[~chosen])


def test_a_resumed_epoch_reproduces_the_tail_bit_for_bit(synthetic, tokenizer):
    cfg = config(synthetic, "data.num_workers=2")
    splits = load_dataset("synthetic", synthetic)
    full = batches(cfg, splits, tokenizer, epoch=2)
    assert_same(batches(cfg, splits, tokenizer, epoch=2, start_step=5), full[5:])
    other_epoch = batches(cfg, splits, tokenizer, epoch=3, start_step=7)
    assert not np.array_equal(other_epoch[0]["images"], full[7]["images"])


def test_ranks_read_their_slices_of_the_same_global_batches(synthetic, tokenizer):
    cfg = config(synthetic, "data.sampler=identity", "data.num_instance=2")
    splits = load_dataset("synthetic", synthetic)
    whole = batches(cfg, splits, tokenizer, epoch=0, start_step=4)
    ranks = [batches(cfg, splits, tokenizer, epoch=0, rank=r, world=2, start_step=4) for r in (0, 1)]
    joined = [{k: np.concatenate([a[k], b[k]]) for k in a} for a, b in zip(*ranks)]
    assert_same(joined, whole)


def test_a_corrupt_training_image_is_replaced_and_counted(tmp_path, tokenizer):
    folder = write_dataset(tmp_path, "CUHK-PEDES")
    bad = os.path.join(folder, "imgs", "cam_a", "0001_a.jpg")
    write_corrupt_image(bad)
    cfg = config(folder, "data.dataset=CUHK-PEDES", "train.batch_size=4", "data.num_workers=2")
    splits = load_dataset("CUHK-PEDES", folder)
    loader = build_train_loader(cfg, splits, tokenizer, epoch=0)
    out = list(iterate_batches(loader))
    image_ids = np.concatenate([b["image_ids"] for b in out])
    pids = np.concatenate([b["pids"] for b in out])
    # The bad image (image_id 0, two captions) gives way to identity 0's other image (image_id 1).
    assert len(image_ids) == 8 and 0 not in image_ids and np.sum(image_ids == 1) == 4
    assert np.sum(pids == 0) == 4
    assert loader.skipped_images.count == 2


def test_evaluation_loaders_pad_the_last_batch(synthetic, tokenizer):
    cfg = config(synthetic, "data.num_workers=2")
    split = load_dataset("synthetic", synthetic).test         # 8 images, 16 captions
    gallery = list(iterate_batches(build_gallery_loader(cfg, split, batch_size=5)))
    assert [b["images"].shape for b in gallery] == [(5, 3, *IMAGE_SIZE)] * 2
    pids = np.concatenate([b["pids"] for b in gallery])
    np.testing.assert_array_equal(pids, split.image_pids + [PADDING_PID] * 2)
    images = np.concatenate([b["images"] for b in gallery])
    np.testing.assert_array_equal(images[6], preprocess_image(split.image_paths[6], IMAGE_SIZE))
    queries = list(iterate_batches(build_query_loader(cfg, split, tokenizer, batch_size=6)))
    assert len(queries) == 3
    ids = np.concatenate([b["caption_ids"] for b in queries])
    np.testing.assert_array_equal(ids[:16], tokenizer(split.captions))
    np.testing.assert_array_equal(np.concatenate([b["pids"] for b in queries]),
                                  split.caption_pids + [PADDING_PID] * 2)


def test_a_corrupt_gallery_image_is_an_error_naming_the_file(tmp_path):
    folder = write_dataset(tmp_path, "CUHK-PEDES")
    split = load_dataset("CUHK-PEDES", folder).test
    write_corrupt_image(split.image_paths[1])
    cfg = config(folder, "data.num_workers=2")
    with pytest.raises(CorruptImageError, match=split.image_paths[1]):
        list(iterate_batches(build_gallery_loader(cfg, split, batch_size=2)))
