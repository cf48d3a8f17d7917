"""Writers of small datasets in the CUHK-PEDES, ICFG-PEDES and RSTPReid formats, with generated images."""
import json
import os

import numpy as np
from PIL import Image

ANNOTATION = {"CUHK-PEDES": "reid_raw.json", "ICFG-PEDES": "ICFG-PEDES.json", "RSTPReid": "data_captions.json"}
PATH_FIELD = {"CUHK-PEDES": "file_path", "ICFG-PEDES": "file_path", "RSTPReid": "img_path"}


def _records(name, rows):
    """rows: (split, raw id, image path, captions) -> records in `name`'s field names (plus an unused field)."""
    out = []
    for split, raw_id, path, captions in rows:
        record = {"split": split, "captions": list(captions), PATH_FIELD[name]: path, "id": raw_id}
        if name != "RSTPReid":
            record["processed_tokens"] = [c.lower().split() for c in captions]
        out.append(record)
    return out


# CUHK-PEDES: 1-based ids, two captions per image, a gap in the training ids (3 is absent).
CUHK_ROWS = [
    ("train", 1, "cam_a/0001_a.jpg", ["A man in a red shirt.", "The man wears red."]),
    ("train", 1, "cam_b/0001_b.jpg", ["A man in a red shirt walks.", "He wears a red top."]),
    ("train", 2, "CUHK01/0002.png", ["A woman in blue jeans.", "She has blue jeans."]),
    ("train", 4, "Market/0004.jpg", ["A person with a black bag.", "Carrying a black bag."]),
    ("val", 5, "CUHK03/0005.jpg", ["A man in a gray coat.", "Gray coat, black shoes."]),
    ("test", 6, "test_query/0006_a.jpg", ["A girl with a pink skirt.", "Pink skirt and white shoes."]),
    ("test", 6, "test_query/0006_b.jpg", ["A girl in pink.", "She wears a pink skirt."]),
    ("test", 7, "test_query/0007.jpg", ["An old man with a cane.", "A man holding a cane."]),
]
# ICFG-PEDES: one caption per image, 0-based training ids, no val split.
ICFG_ROWS = [
    ("train", 0, "train/0000/0000_c1_0.jpg", ["A woman in a white coat."]),
    ("train", 0, "train/0000/0000_c2_1.jpg", ["A woman wearing a white coat."]),
    ("train", 3, "train/0003/0003_c1_0.jpg", ["A man with a backpack."]),
    ("test", 10, "test/0010/0010_c1_0.jpg", ["A man in black."]),
    ("test", 11, "test/0011/0011_c3_0.jpg", ["A woman in green."]),
]
# RSTPReid: the image field is img_path, images sit flat in imgs/.
RSTP_ROWS = [
    ("train", 0, "0000_c1_0001.jpg", ["A man in a black jacket.", "Black jacket, blue jeans."]),
    ("train", 1, "0001_c4_0002.jpg", ["A woman with a red umbrella.", "She holds a red umbrella."]),
    ("train", 1, "0001_c5_0003.jpg", ["The woman has a red umbrella.", "A red umbrella."]),
    ("val", 5, "0005_c2_0004.jpg", ["A man in shorts.", "Gray shorts."]),
    ("test", 8, "0008_c9_0005.jpg", ["A woman in a long dress.", "Long dress, sandals."]),
]
ROWS = {"CUHK-PEDES": CUHK_ROWS, "ICFG-PEDES": ICFG_ROWS, "RSTPReid": RSTP_ROWS}


def write_image(path, seed=0, size=(40, 20)):
    """A small random RGB image of `size` (H, W); the format follows the extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_corrupt_image(path):
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a JPEG any more")


def write_dataset(parent, name, records=None, annotation=None):
    """Write `name`'s annotation file (records default to the rows above) and one image per distinct path.

    Returns the dataset folder `<parent>/<name>`.
    """
    folder = os.path.join(str(parent), name)
    os.makedirs(folder, exist_ok=True)
    records = _records(name, ROWS[name]) if records is None else records
    with open(os.path.join(folder, annotation or ANNOTATION[name]), "w", encoding="utf-8") as f:
        json.dump(records, f)
    for i, record in enumerate(records):
        path = record.get(PATH_FIELD[name]) if isinstance(record, dict) else None
        if isinstance(path, str) and path:
            write_image(os.path.join(folder, "imgs", path), seed=i)
    return folder


def default_records(name):
    return _records(name, ROWS[name])
