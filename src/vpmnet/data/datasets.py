"""Annotation readers for CUHK-PEDES, ICFG-PEDES, RSTPReid and the synthetic set: validated records -> splits."""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

SPLIT_NAMES = ("train", "val", "test")
MISSING_IMAGE_POLICIES = ("error", "skip")
IMAGE_DIR = "imgs"
EXAMPLES_SHOWN = 5  # how many offending paths or ids a message lists


@dataclass(frozen=True)
class DatasetFormat:
    folder: str                       # the dataset's folder under a parent root
    annotation_files: Tuple[str, ...]  # accepted annotation file names, preferred first
    path_field: str                   # the record field holding the image path, relative to imgs/


FORMATS: Dict[str, DatasetFormat] = {
    "CUHK-PEDES": DatasetFormat("CUHK-PEDES", ("reid_raw.json",), "file_path"),
    # IRRA's loader opens ICFG-PEDES.json; its README says ICFG_PEDES.json.
    "ICFG-PEDES": DatasetFormat("ICFG-PEDES", ("ICFG-PEDES.json", "ICFG_PEDES.json"), "file_path"),
    "RSTPReid": DatasetFormat("RSTPReid", ("data_captions.json",), "img_path"),
    # Written by `vpmnet synth` in the CUHK-PEDES format.
    "synthetic": DatasetFormat("synthetic", ("reid_raw.json",), "file_path"),
}


class DatasetError(ValueError):
    """A dataset that cannot be read as asked: no annotation file, a malformed record, missing images."""


@dataclass(frozen=True)
class TrainSample:
    pid: int        # training identity, 0..num_classes-1 in the order of the sorted raw ids
    image_id: int   # running index of the training image (shared by its captions)
    path: str
    caption: str


@dataclass
class EvalSplit:
    image_paths: List[str]   # the gallery: one entry per image
    image_pids: List[int]    # raw ids, comparable with caption_pids
    captions: List[str]      # the queries: one entry per caption
    caption_pids: List[int]


@dataclass
class DatasetSplits:
    name: str
    annotation_path: str
    train: List[TrainSample]
    num_classes: int
    val: EvalSplit           # empty for ICFG-PEDES, which has no validation split
    test: EvalSplit
    problems: List[str]      # things worth a look that did not stop loading


@dataclass(frozen=True)
class Record:
    index: int
    split: str
    raw_id: int
    path: str
    captions: Tuple[str, ...]


def dataset_names() -> List[str]:
    return list(FORMATS)


def canonical_name(name: str) -> str:
    """The registered spelling of a dataset name, matched case-insensitively."""
    for known in FORMATS:
        if known.lower() == name.lower():
            return known
    raise DatasetError(f"unknown dataset '{name}'; choose one of {', '.join(FORMATS)}")


def find_annotation_file(name: str, root: str) -> str:
    """`root` may be the parent folder (`<root>/CUHK-PEDES/reid_raw.json`) or the dataset folder itself."""
    fmt = FORMATS[canonical_name(name)]
    candidates = [os.path.join(folder, file_name)
                  for folder in (os.path.join(root, fmt.folder), root)
                  for file_name in fmt.annotation_files]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DatasetError(f"no {fmt.folder} annotation file under {root}; looked for {', '.join(candidates)}")


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _field(record: dict, name: str, where: str):
    if name not in record:
        raise DatasetError(f"{where}: missing field '{name}'")
    return record[name]


def parse_record(record, index: int, source: str, path_field: str) -> Record:
    """Check one JSON record's fields and types; errors name the file, the record index and the field."""
    where = f"{source}: record {index}"
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected an object, got {_type_name(record)}")
    split = _field(record, "split", where)
    if split not in SPLIT_NAMES:
        raise DatasetError(f"{where}: field 'split' must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    raw_id = _field(record, "id", where)
    if not isinstance(raw_id, int) or isinstance(raw_id, bool) or raw_id < 0:
        raise DatasetError(f"{where}: field 'id' must be a non-negative integer, got {raw_id!r}")
    path = _field(record, path_field, where)
    if not isinstance(path, str) or not path.strip():
        raise DatasetError(f"{where}: field '{path_field}' must be a non-empty string, got {_type_name(path)}")
    captions = _field(record, "captions", where)
    if not isinstance(captions, list) or not captions:
        raise DatasetError(f"{where}: field 'captions' must be a non-empty list of strings, "
                           f"got {_type_name(captions) if not isinstance(captions, list) else 'an empty list'}")
    for k, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise DatasetError(f"{where}: field 'captions[{k}]' must be a string, got {_type_name(caption)}")
        if not caption.strip():
            raise DatasetError(f"{where}: field 'captions[{k}]' is empty")
    return Record(index, split, raw_id, path, tuple(c.strip() for c in captions))


def read_records(annotation_path: str, path_field: str) -> List[Record]:
    try:
        with open(annotation_path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{annotation_path}: not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise DatasetError(f"{annotation_path}: the top level must be a list of records, got {_type_name(data)}")
    return [parse_record(record, i, annotation_path, path_field) for i, record in enumerate(data)]


def _examples(items: Sequence) -> str:
    shown = ", ".join(str(x) for x in items[:EXAMPLES_SHOWN])
    return shown + (", ..." if len(items) > EXAMPLES_SHOWN else "")


def _drop_missing_images(records: List[Record], image_dir: str, policy: str, source: str,
                         problems: List[str]) -> List[Record]:
    """One stat per listed file; `error` stops with a count and the first paths, `skip` leaves them out."""
    missing = [r for r in records if not os.path.isfile(os.path.join(image_dir, r.path))]
    if not missing:
        return records
    paths = [os.path.join(image_dir, r.path) for r in missing]
    summary = f"{len(missing)} of {len(records)} images listed in {source} are missing: {_examples(paths)}"
    if policy == "error":
        raise DatasetError(f"{summary} (set data.missing_images=skip to leave them out)")
    problems.append(f"{summary}; left out with their {sum(len(r.captions) for r in missing)} captions")
    missing_indices = {r.index for r in missing}
    return [r for r in records if r.index not in missing_indices]


def _report_overlaps(records: List[Record], problems: List[str]) -> None:
    splits_of: Dict[int, set] = {}
    for r in records:
        splits_of.setdefault(r.raw_id, set()).add(r.split)
    shared = sorted(i for i, s in splits_of.items() if len(s) > 1)
    if shared:
        problems.append(f"{len(shared)} identities appear in more than one split: ids {_examples(shared)}")
    repeated = sorted(p for p, n in Counter(r.path for r in records).items() if n > 1)
    if repeated:
        problems.append(f"{len(repeated)} image paths are listed more than once: {_examples(repeated)}")


def _train_samples(records: List[Record], image_dir: str) -> Tuple[List[TrainSample], int]:
    # Pids come from the sorted unique raw ids, so CUHK's 1-based ids map to id-1 and gaps close up.
    pid_of = {raw: pid for pid, raw in enumerate(sorted({r.raw_id for r in records}))}
    samples = [TrainSample(pid_of[r.raw_id], image_id, os.path.join(image_dir, r.path), caption)
               for image_id, r in enumerate(records) for caption in r.captions]
    return samples, len(pid_of)


def _eval_split(records: List[Record], image_dir: str) -> EvalSplit:
    return EvalSplit(image_paths=[os.path.join(image_dir, r.path) for r in records],
                     image_pids=[r.raw_id for r in records],
                     captions=[c for r in records for c in r.captions],
                     caption_pids=[r.raw_id for r in records for _ in r.captions])


def load_dataset(name: str, root: str, missing_images: str = "error") -> DatasetSplits:
    """Read and validate `name`'s annotation file under `root` (the parent or the dataset folder).

    Images live in `imgs/` next to the annotation file. `missing_images="error"` stops on the first load with
    a count and example paths; `"skip"` leaves those images (and their captions) out and notes it in
    `problems`. Malformed records are always errors naming the file, the record index and the field.
    """
    if missing_images not in MISSING_IMAGE_POLICIES:
        raise DatasetError(f"missing_images is {missing_images!r}; choose one of {', '.join(MISSING_IMAGE_POLICIES)}")
    name = canonical_name(name)
    annotation_path = find_annotation_file(name, root)
    image_dir = os.path.join(os.path.dirname(annotation_path), IMAGE_DIR)
    records = read_records(annotation_path, FORMATS[name].path_field)
    problems: List[str] = []
    _report_overlaps(records, problems)
    records = _drop_missing_images(records, image_dir, missing_images, annotation_path, problems)
    by_split = {s: [r for r in records if r.split == s] for s in SPLIT_NAMES}
    train, num_classes = _train_samples(by_split["train"], image_dir)
    return DatasetSplits(name=name, annotation_path=annotation_path, train=train, num_classes=num_classes,
                         val=_eval_split(by_split["val"], image_dir), test=_eval_split(by_split["test"], image_dir),
                         problems=problems)
