"""Readers of the three benchmark formats: splits, pid mapping, validation messages, missing images, data-info."""
import json
import os

import pytest

from conftest import cli
from fixtures_data import ANNOTATION, default_records, write_dataset
from vpmnet.data.datasets import DatasetError, load_dataset


@pytest.mark.parametrize("name", ["CUHK-PEDES", "ICFG-PEDES", "RSTPReid"])
def test_root_may_be_the_parent_or_the_dataset_folder(tmp_path, name):
    folder = write_dataset(tmp_path, name)
    from_parent = load_dataset(name, str(tmp_path))
    from_folder = load_dataset(name, folder)
    assert from_parent.train == from_folder.train
    assert from_parent.annotation_path == os.path.join(folder, ANNOTATION[name])


def test_cuhk_pids_come_from_sorted_unique_ids(tmp_path):
    folder = write_dataset(tmp_path, "CUHK-PEDES")
    splits = load_dataset("cuhk-pedes", str(tmp_path))   # names match case-insensitively
    assert splits.name == "CUHK-PEDES"
    # Raw train ids 1, 2, 4: 1-based and with a gap -> pids 0, 1, 2.
    assert splits.num_classes == 3
    assert [s.pid for s in splits.train] == [0, 0, 0, 0, 1, 1, 2, 2]
    assert [s.image_id for s in splits.train] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert splits.train[0].path == os.path.join(folder, "imgs", "cam_a/0001_a.jpg")
    assert splits.train[1].caption == "The man wears red."
    # Val and test keep raw ids: gallery one per image, queries one per caption.
    assert splits.val.image_pids == [5] and splits.val.caption_pids == [5, 5]
    assert splits.test.image_pids == [6, 6, 7]
    assert splits.test.caption_pids == [6, 6, 6, 6, 7, 7]
    assert splits.test.captions[2] == "A girl in pink."
    assert splits.test.image_paths[2] == os.path.join(folder, "imgs", "test_query/0007.jpg")
    assert splits.problems == []


def test_icfg_has_no_val_and_accepts_the_underscore_file_name(tmp_path):
    write_dataset(tmp_path, "ICFG-PEDES", annotation="ICFG_PEDES.json")
    splits = load_dataset("ICFG-PEDES", str(tmp_path))
    assert splits.num_classes == 2
    assert [s.pid for s in splits.train] == [0, 0, 1]          # raw ids 0, 3
    assert [s.image_id for s in splits.train] == [0, 1, 2]
    assert splits.val.image_paths == [] and splits.val.captions == []
    assert splits.test.image_pids == [10, 11] and splits.test.caption_pids == [10, 11]


def test_rstpreid_reads_img_path(tmp_path):
    folder = write_dataset(tmp_path, "RSTPReid")
    splits = load_dataset("RSTPReid", folder)
    assert splits.num_classes == 2
    assert [s.pid for s in splits.train] == [0, 0, 1, 1, 1, 1]
    assert splits.train[2].path == os.path.join(folder, "imgs", "0001_c4_0002.jpg")
    assert splits.val.image_pids == [5] and splits.test.caption_pids == [8, 8]


def _broken(record_index, change, name="CUHK-PEDES"):
    records = default_records(name)
    if callable(change):
        records[record_index] = change(records[record_index])
    return records


@pytest.mark.parametrize("change, field", [
    (lambda r: {k: v for k, v in r.items() if k != "captions"}, "missing field 'captions'"),
    (lambda r: {**r, "captions": "a man in red"}, "field 'captions'"),
    (lambda r: {**r, "captions": []}, "field 'captions'"),
    (lambda r: {**r, "captions": ["fine", 5]}, "field 'captions[1]' must be a string"),
    (lambda r: {**r, "captions": ["fine", "  "]}, "field 'captions[1]' is empty"),
    (lambda r: {**r, "id": "7"}, "field 'id'"),
    (lambda r: {**r, "id": True}, "field 'id'"),
    (lambda r: {**r, "id": -1}, "field 'id'"),
    (lambda r: {**r, "split": "dev"}, "field 'split'"),
    (lambda r: {k: v for k, v in r.items() if k != "file_path"}, "missing field 'file_path'"),
    (lambda r: {**r, "file_path": None}, "field 'file_path'"),
    (lambda r: 42, "expected an object, got int"),
])
def test_a_malformed_record_names_file_index_and_field(tmp_path, change, field):
    folder = write_dataset(tmp_path, "CUHK-PEDES", _broken(2, change))
    with pytest.raises(DatasetError) as err:
        load_dataset("CUHK-PEDES", folder)
    message = str(err.value)
    assert os.path.join(folder, "reid_raw.json") in message
    assert "record 2" in message and field in message


def test_rstpreid_names_its_own_path_field(tmp_path):
    records = _broken(1, lambda r: {k: v for k, v in r.items() if k != "img_path"}, "RSTPReid")
    folder = write_dataset(tmp_path, "RSTPReid", records)
    with pytest.raises(DatasetError, match=r"record 1: missing field 'img_path'"):
        load_dataset("RSTPReid", folder)


@pytest.mark.parametrize("content, expected", [("{not json", "not valid JSON"),
                                               ('{"split": "train"}', "top level must be a list")])
def test_unreadable_annotation_files(tmp_path, content, expected):
    folder = write_dataset(tmp_path, "CUHK-PEDES")
    with open(os.path.join(folder, "reid_raw.json"), "w") as f:
        f.write(content)
    with pytest.raises(DatasetError, match=expected):
        load_dataset("CUHK-PEDES", folder)


def test_no_annotation_file_lists_where_it_looked(tmp_path):
    with pytest.raises(DatasetError, match="ICFG-PEDES.json.*ICFG_PEDES.json"):
        load_dataset("ICFG-PEDES", str(tmp_path))
    with pytest.raises(DatasetError, match="unknown dataset 'market'"):
        load_dataset("market", str(tmp_path))


def test_missing_images_stop_loading_or_are_skipped(tmp_path):
    folder = write_dataset(tmp_path, "CUHK-PEDES")
    gone = [os.path.join(folder, "imgs", p) for p in ("cam_b/0001_b.jpg", "test_query/0007.jpg")]
    for path in gone:
        os.remove(path)
    with pytest.raises(DatasetError) as err:
        load_dataset("CUHK-PEDES", folder)
    assert "2 of 8 images" in str(err.value) and gone[0] in str(err.value) and gone[1] in str(err.value)
    assert "missing_images=skip" in str(err.value)

    splits = load_dataset("CUHK-PEDES", folder, missing_images="skip")
    assert len(splits.train) == 6 and splits.num_classes == 3
    assert [s.image_id for s in splits.train] == [0, 0, 1, 1, 2, 2]
    assert splits.test.image_pids == [6, 6] and len(splits.test.captions) == 4
    assert len(splits.problems) == 1 and "2 of 8 images" in splits.problems[0]
    assert "4 captions" in splits.problems[0]


def test_overlapping_identities_and_repeated_paths_are_reported(tmp_path):
    records = default_records("CUHK-PEDES")
    records[4] = {**records[4], "id": 1}                          # a val image of a training identity
    records[7] = {**records[7], "file_path": records[6]["file_path"]}
    splits = load_dataset("CUHK-PEDES", write_dataset(tmp_path, "CUHK-PEDES", records))
    assert any("1 identities appear in more than one split: ids 1" in p for p in splits.problems)
    assert any("image paths are listed more than once: test_query/0006_b.jpg" in p for p in splits.problems)


def test_data_info_json_counts(tmp_path):
    write_dataset(tmp_path, "CUHK-PEDES")
    result = cli("data-info", "--dataset", "CUHK-PEDES", "--root", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["train"]["ids"] == 3 and report["train"]["images"] == 4 and report["train"]["captions"] == 8
    assert {k: report["val"][k] for k in ("ids", "images", "captions")} == {"ids": 1, "images": 1, "captions": 2}
    assert {k: report["test"][k] for k in ("ids", "images", "captions")} == {"ids": 2, "images": 3, "captions": 6}
    tokens = report["test"]["tokens"]
    assert 4 <= tokens["mean"] <= 8 and tokens["share_over_77"] == 0.0
    assert report["problems"] == []


def test_data_info_reports_problems_and_errors(tmp_path):
    folder = write_dataset(tmp_path, "RSTPReid")
    os.remove(os.path.join(folder, "imgs", "0005_c2_0004.jpg"))
    result = cli("data-info", "--dataset", "RSTPReid", "--root", folder)
    assert result.returncode == 1
    assert "1 of 5 images" in result.stdout
    assert "  val         0 ids" in result.stdout

    with open(os.path.join(folder, "data_captions.json"), "w") as f:
        json.dump([{"split": "train", "captions": ["x"], "img_path": "a.jpg", "id": "zero"}], f)
    result = cli("data-info", "--dataset", "RSTPReid", "--root", folder)
    assert result.returncode == 2
    assert "record 0: field 'id'" in result.stderr and "Traceback" not in result.stderr
