"""Gallery search: the index file, exact and FAISS top-k, `vpmnet.load`, and `vpmnet index` / `vpmnet search` end to end.

Most commands run on an export folder holding a fake but deterministic colour encoder (an image's embedding is the
closeness of the mean colour of its top half to six colour prototypes; a caption's is the count of the colour words
in it), so the right answer of every query is known. A tiny VPMNet trained by `vpmnet train` on a synthetic set
covers training checkpoints, the Python API and the share of captions whose person is found in the top 5.
"""
import json
import os
import shutil

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops
from PIL import Image

from conftest import cli
from vpmnet import checkpoint
from vpmnet.search import store
from vpmnet.search.index import find_images
from vpmnet.search.query import search_index
from vpmnet.search.topk import build_faiss, exact_topk, faiss_factory, faiss_topk, upcast_float16

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (235, 210, 40),
           "white": (245, 245, 245), "black": (15, 15, 15)}
IMAGE_SIZE = (64, 32)


class ColourImageEncoder(nn.Cell):
    """CLIP-normalised images [B,3,H,W] -> closeness of the top half's mean colour to each prototype, unit length."""

    def __init__(self, prototypes):
        super().__init__()
        self.prototypes = ms.Tensor(prototypes, ms.float32)   # [C, 3], in normalised pixel space

    def construct(self, images):
        half = images.shape[2] // 2
        mean = images[:, :, :half, :].mean(axis=(2, 3))
        distance = ((mean.expand_dims(1) - self.prototypes.expand_dims(0)) ** 2).sum(axis=2)
        feats = ops.exp(-4.0 * distance)
        return feats / ops.norm(feats, dim=-1, keepdim=True)


class ColourTextEncoder(nn.Cell):
    """Caption ids [B,77] -> count of each colour word (+ a floor so no row is zero), unit length."""

    def __init__(self, word_ids):
        super().__init__()
        self.word_ids = ms.Tensor(word_ids, ms.int32)

    def construct(self, ids):
        hits = ops.equal(ids.expand_dims(2), self.word_ids.reshape(1, 1, -1)).astype(ms.float32).sum(axis=1)
        feats = hits + 0.01
        return feats / ops.norm(feats, dim=-1, keepdim=True)


def _write_fake_export(folder, fingerprint):
    """An export folder (the layout `vpmnet export` writes) holding the colour encoders."""
    from vpmnet.clip.tokenizer import load_tokenizer
    from vpmnet.data.transforms import CLIP_MEAN, CLIP_STD

    tokenizer = load_tokenizer()
    word_ids = [tokenizer.encode(word)[0] for word in COLOURS]
    prototypes = (np.array(list(COLOURS.values())) / 255.0 - CLIP_MEAN) / CLIP_STD
    os.makedirs(folder)
    ms.export(ColourImageEncoder(prototypes), ms.Tensor(shape=[None, 3, *IMAGE_SIZE], dtype=ms.float32),
              file_name=os.path.join(folder, "image_encoder.mindir"), file_format="MINDIR")
    ms.export(ColourTextEncoder(word_ids), ms.Tensor(shape=[None, 77], dtype=ms.int32),
              file_name=os.path.join(folder, "text_encoder.mindir"), file_format="MINDIR")
    tokenizer.save(os.path.join(folder, "tokenizer"))
    manifest = {"format": "vpmnet-export/1", "image_size": list(IMAGE_SIZE), "context_length": 77,
                "embed_dim": len(COLOURS), "fingerprint": fingerprint,
                "image_encoder": {"file": "image_encoder.mindir", "mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
                "text_encoder": {"file": "text_encoder.mindir", "tokenizer": "tokenizer"}}
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)


def _solid(colour, size=(32, 64)):
    pixels = np.empty((size[1], size[0], 3), np.uint8)
    pixels[:] = COLOURS[colour]
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two fake colour models (different fingerprints) and a gallery: two images per colour in mixed formats and
    letter cases, sub-folders, an EXIF-rotated photo, a corrupt file and a non-image file."""
    root = tmp_path_factory.mktemp("search")
    _write_fake_export(str(root / "colours"), "c0100c0100c0100c")
    shutil.copytree(root / "colours", root / "other")
    manifest = json.loads((root / "other" / "manifest.json").read_text())
    (root / "other" / "manifest.json").write_text(json.dumps({**manifest, "fingerprint": "0f0f0f0f0f0f0f0f"}))

    gallery = root / "gallery"
    formats = [("jpg", "JPEG"), ("PNG", "PNG"), ("webp", "WEBP"), ("Bmp", "BMP"), ("jpeg", "JPEG"), ("png", "PNG")]
    for number, colour in enumerate(COLOURS):
        for copy in range(2):
            ext, fmt = formats[(number + copy) % len(formats)]
            folder = gallery / f"cam{copy}" / ("deep" if number % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            # Second copies are 2x larger, so their bytes (content hashes) differ from the first copies'.
            image = _solid(colour, (32 * (copy + 1), 64 * (copy + 1)))
            image.save(folder / f"{colour}_{copy}.{ext}", format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    # Stored landscape (left half red, right half green), tagged "rotate 90 degrees clockwise": upright it is red
    # on top. Read without its orientation, its top half would be red and green mixed.
    landscape = np.empty((32, 64, 3), np.uint8)
    landscape[:, :32], landscape[:, 32:] = COLOURS["red"], COLOURS["green"]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(landscape).save(gallery / "rotated.jpg", exif=exif.tobytes(), quality=100)
    (gallery / "cam0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (gallery / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def built(world):
    """`vpmnet index` over the gallery with the colour model: (index path, completed process)."""
    out = world / "gallery.safetensors"
    result = cli("index", "--model", world / "colours", "--images", world / "gallery", "--out", out, "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    return out, result


def test_index_holds_every_readable_image_and_lists_the_corrupt_one(world, built):
    out, result = built
    index = store.read(str(out))
    stems = sorted(os.path.splitext(os.path.basename(p))[0] for p in index.paths)
    assert stems == sorted([f"{c}_{k}" for c in COLOURS for k in range(2)] + ["rotated"])
    assert index.dtype == "float16" and index.fingerprint == "c0100c0100c0100c"
    assert index.model == str(world / "colours")
    assert np.allclose(np.linalg.norm(index.embeddings.astype(np.float32), axis=1), 1, atol=2e-3)
    assert "skipped 1 unreadable files" in result.stderr and "broken.jpg" in result.stderr
    assert "img/s" in result.stderr   # the progress bar's rate


def test_exif_orientation_is_honoured(built):
    index = store.read(str(built[0]))
    rows = {os.path.basename(p): row for row, p in enumerate(index.paths)}
    rotated = index.embeddings[rows["rotated.jpg"]].astype(np.float32)
    red = index.embeddings[rows["red_0.jpg"]].astype(np.float32)
    assert rotated @ red > 0.99


def test_search_finds_the_described_colour_and_writes_json_sheet_and_html(world, built):
    queries = world / "queries.txt"
    queries.write_text("\n".join(f"a person dressed in {c}" for c in COLOURS) + "\n\n")
    sheet, page = world / "sheet.png", world / "page.html"
    result = cli("search", "--index", built[0], "--queries", queries, "--topk", "3", "--json",
                 "--sheet", sheet, "--html", page)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(COLOURS)   # the blank line is not a query
    for line, colour in zip(lines, COLOURS):
        record = json.loads(line)
        assert record["query"] == f"a person dressed in {colour}"
        assert [r["rank"] for r in record["results"]] == [1, 2, 3]
        assert set(record["results"][0]) == {"rank", "path", "score"}
        scores = [r["score"] for r in record["results"]]
        assert scores == sorted(scores, reverse=True)
        top = [os.path.basename(r["path"]) for r in record["results"][:2]]
        expected = {f"{colour}_0", f"{colour}_1"} if colour != "red" else {"red_0", "red_1", "rotated"}
        assert {os.path.splitext(name)[0] for name in top} <= expected
    with Image.open(sheet) as image:
        image.load()
        assert image.format == "PNG" and image.width > 3 * 96 and image.height > len(COLOURS) * 192
    text = page.read_text(encoding="utf-8")
    assert text.count('src="data:image/jpeg;base64,') == 3 * len(COLOURS)
    assert "a person dressed in yellow" in text


def test_append_is_idempotent(world, built):
    before = store.read(str(built[0]))
    result = cli("index", "--model", world / "colours", "--images", world / "gallery", "--out", built[0], "--append")
    assert result.returncode == 0, result.stderr
    assert "added 0 images" in result.stdout and f"{len(before)} already indexed" in result.stdout
    after = store.read(str(built[0]))
    assert after.paths == before.paths and np.array_equal(after.embeddings, before.embeddings)


def test_a_different_model_is_refused(world, built):
    for args in (("search", "--index", built[0], "--query", "red", "--model", world / "other"),
                 ("index", "--model", world / "other", "--images", world / "gallery", "--out", built[0], "--append")):
        result = cli(*args)
        assert result.returncode == 2, result.stderr
        assert "c0100c0100c0100c" in result.stderr and "0f0f0f0f0f0f0f0f" in result.stderr


def test_empty_folder_and_existing_index_are_clear_errors(world, built, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("no images here")
    result = cli("index", "--model", world / "colours", "--images", tmp_path / "empty", "--out", tmp_path / "x.st")
    assert result.returncode == 2
    assert "no images found" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.st").exists()
    result = cli("index", "--model", world / "colours", "--images", world / "gallery", "--out", built[0])
    assert result.returncode == 2 and "--append" in result.stderr


def test_only_corrupt_files_is_an_error(world, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = cli("index", "--model", world / "colours", "--images", tmp_path, "--out", tmp_path / "x.st")
    assert result.returncode == 2 and "could be read" in result.stderr and "bad.png" in result.stderr


def test_find_images_recursive_case_insensitive_and_glob(world):
    found = find_images(str(world / "gallery"))
    assert len(found) == 2 * len(COLOURS) + 2   # + rotated.jpg + broken.jpg, not notes.txt
    assert all(os.path.isabs(p) for p in found) and found == sorted(found)
    # A glob matches names as the shell does (case-sensitively); a matched folder is searched recursively.
    assert find_images(str(world / "gallery" / "**" / "*.PNG")) == [p for p in found if p.endswith(".PNG")]
    assert find_images(str(world / "gallery" / "cam*")) == [p for p in found if os.sep + "cam" in p]


# --- a trained model ------------------------------------------------------------------------------------------

# About a minute on two cores: 16 synthetic people, 64x32 images, one layer per tower, 20 epochs of 4 steps.
TINY_TRAINING = [
    "model.image_size=[64,32]", "model.clip.embed_dim=64", "prompts.mode=none", "kan.hidden=16",
    "model.clip.vision={width: 64, layers: 1, heads: 2, patch_size: 16, stride_size: 16, image_size: [64, 32]}",
    "model.clip.text={width: 64, layers: 1, heads: 2, context_length: 77, vocab_size: 49408}",
    "loss.names=[sdm,id]", "train.epochs=20", "train.batch_size=32", "train.lr=1.0e-3", "data.img_aug=false",
    "data.num_workers=1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset root, run folder, index of its images): `vpmnet synth`, `vpmnet train`, `vpmnet index`."""
    root = tmp_path_factory.mktemp("trained")
    data, run, out = root / "synthetic", root / "run", root / "gallery.safetensors"
    result = cli("synth", data, "--identities", 16, "--images-per-identity", 4, "--size", "64x32",
                 "--val-identities", 0, "--test-identities", 0)
    assert result.returncode == 0, result.stderr
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "cpu_smoke.yaml")
    result = cli("train", "--config", config, f"data.root={data}", "--output-dir", run, *TINY_TRAINING)
    assert result.returncode == 0, result.stderr[-3000:]
    result = cli("index", "--model", run, "--images", data / "imgs", "--out", out)
    assert result.returncode == 0, result.stderr
    return data, run, out


def test_trained_model_finds_the_described_person_in_its_top_5(trained, tmp_path):
    from vpmnet.data import load_dataset

    data, _, out = trained
    samples = load_dataset("synthetic", str(data)).train
    pid_of = {os.path.abspath(s.path): s.pid for s in samples}
    queries = tmp_path / "captions.txt"
    queries.write_text("\n".join(s.caption for s in samples), encoding="utf-8")
    result = cli("search", "--index", out, "--queries", queries, "--topk", 5, "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["query"] for r in records] == [s.caption.strip() for s in samples]
    found = [any(pid_of[hit["path"]] == s.pid for hit in r["results"]) for r, s in zip(records, samples)]
    share = float(np.mean(found))
    print(f"identity in the top 5 for {share:.1%} of {len(found)} captions (a random ranking: about 28%)")
    assert share > 0.6   # measured 92%; chance is 1 - C(60,5)/C(64,5) = 28%


def test_python_api_agrees_with_the_index_and_search(trained, graph_mode):
    import vpmnet

    data, run, out = trained
    index = store.read(str(out))
    model = vpmnet.load(str(run))
    assert model.fingerprint == checkpoint.read_record(str(run / "best.safetensors"))["fingerprint"] == index.fingerprint
    assert model.image_size == (64, 32) and model.embed_dim == 64
    images = model.encode_images(index.paths[:5], batch_size=4)          # one full batch, one padded
    assert images.dtype == np.float32 and images.shape == (5, 64)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(images, index.embeddings[:5].astype(np.float32), atol=2e-3)
    alone = model.encode_images(Image.open(index.paths[4]), batch_size=4)
    assert np.allclose(alone[0], images[4], atol=1e-5)                   # padding rows do not leak into results
    query = "a woman in a red coat with a black backpack"
    text = model.encode_texts(query)
    assert text.shape == (1, 64) and np.isclose(np.linalg.norm(text), 1, atol=1e-5)
    result = cli("search", "--index", out, "--query", query, "--json", "--topk", 3)
    hits = json.loads(result.stdout)["results"]
    scores = index.embeddings.astype(np.float32) @ text[0]
    assert np.allclose([h["score"] for h in hits], np.sort(scores)[::-1][:3], atol=1e-4)
    assert [h["path"] for h in hits] == [index.paths[i] for i in np.argsort(-scores, kind="stable")[:3]]


# --- the index file and top-k ------------------------------------------------------------------------------------

def test_store_round_trip_keeps_any_path(tmp_path, rng):
    embeddings = rng.standard_normal((3, 8)).astype(np.float16)
    paths = ["/data/caméra 1/a.jpg", "/data/new\nline.png", "/data/b.webp"]
    index = store.GalleryIndex(embeddings, rng.integers(0, 256, (3, 32), dtype=np.uint8), paths, "fp", "/m")
    path = str(tmp_path / "i.safetensors")
    store.write(path, index)
    again = store.read(path)
    assert again.paths == paths and again.fingerprint == "fp" and again.model == "/m"
    assert np.array_equal(again.embeddings, embeddings) and np.array_equal(again.sha256, index.sha256)
    assert store.read_header(path) == {"format": store.FORMAT, "fingerprint": "fp", "model": "/m", "embed_dim": 8,
                                       "count": 3, "dtype": "float16"}
    assert os.listdir(tmp_path) == ["i.safetensors"]
    (tmp_path / "other.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a vpmnet index"):
        store.read_header(str(tmp_path / "other.safetensors"))


def test_float16_upcast_is_bit_exact(rng):
    half = (rng.standard_normal((64, 40)) * 0.05).astype(np.float16)
    half[0, :8] = [0.0, -0.0, 6e-8, -3e-6, 6.1e-5, -1.0, 1.0, 65504.0]   # zeros, subnormals, extremes
    out = upcast_float16(half, np.empty(half.shape, np.float32))
    assert np.array_equal(out.view(np.uint32), half.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_exact_topk_matches_a_full_sort(rng, dtype):
    gallery = rng.standard_normal((1000, 16))
    gallery = (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).astype(dtype)
    gallery[500] = gallery[20]                 # a tie across chunks: the lower index ranks first
    queries = rng.standard_normal((5, 16)).astype(np.float32)
    queries[0] = gallery[20]
    scores, indices = exact_topk(queries, gallery, 7, chunk_rows=64)
    full = queries @ gallery.astype(np.float32).T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :7]
    assert np.array_equal(indices, expected)
    assert np.allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-6)
    assert indices[0, 0] == 20 and indices[0, 1] == 500
    assert exact_topk(queries, gallery[:3], 10)[1].shape == (5, 3)   # k is capped by the gallery


def test_faiss_backend(rng):
    pytest.importorskip("faiss")
    # Clustered unit vectors, like embeddings of a few hundred people.
    centres = rng.standard_normal((200, 32))
    gallery = centres[rng.integers(0, 200, 20000)] + 0.3 * rng.standard_normal((20000, 32))
    gallery = (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).astype(np.float16)
    queries = gallery[:50].astype(np.float32) + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
    factory = faiss_factory(len(gallery), "float16")
    assert factory.startswith("IVF") and factory.endswith("SQfp16")
    _, approx = faiss_topk(build_faiss(gallery, factory), queries, 10)
    _, exact = exact_topk(queries, gallery, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9
    index = store.GalleryIndex(gallery[:100], np.zeros((100, 32), np.uint8), [str(i) for i in range(100)], "f", "m")
    _, flat = search_index(index, queries, 5, backend="faiss")     # small: exact inside FAISS
    assert np.array_equal(flat, exact_topk(queries, gallery[:100], 5)[1])


def test_faiss_index_is_cached_beside_the_index_and_rebuilt_when_it_changes(tmp_path, rng):
    pytest.importorskip("faiss")
    embeddings = rng.standard_normal((50, 8)).astype(np.float32)
    index = store.GalleryIndex(embeddings, rng.integers(0, 256, (50, 32), dtype=np.uint8),
                               [str(i) for i in range(50)], "f", "m")
    path = str(tmp_path / "g.safetensors")
    first = search_index(index, embeddings[:2], 3, backend="faiss", index_path=path)
    cached = [name for name in os.listdir(tmp_path) if name.endswith(".faiss")]
    assert len(cached) == 1
    assert np.array_equal(search_index(index, embeddings[:2], 3, backend="faiss", index_path=path)[1], first[1])
    grown = index.extended(embeddings[:1] * -1, rng.integers(0, 256, (1, 32), dtype=np.uint8), ["new"])
    search_index(grown, embeddings[:2], 3, backend="faiss", index_path=path)
    assert [name for name in os.listdir(tmp_path) if name.endswith(".faiss")] != cached   # the stale one is gone
    assert len(os.listdir(tmp_path)) == 1
