"""`vpmnet.load`: a retrieval model (image and text encoders with their preprocessing) from a checkpoint or an export.

    model = vpmnet.load("runs/cpu_smoke")            # training checkpoint file or run folder
    model = vpmnet.load("export/")                   # `vpmnet export` folder: MindIR graphs, no training graph
    images = model.encode_images(["a.jpg", pil_image])   # float32 [N, D], rows of unit length
    texts = model.encode_texts(["a man in a red jacket"])  # float32 [M, D]
    scores = texts @ images.T                          # cosine similarities

Loading sets MindSpore to graph mode on Ascend when its runtime is present, else on the CPU.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence, Union

import numpy as np
from PIL import Image

from vpmnet.data.transforms import CLIP_MEAN, CLIP_STD, ImageLike, preprocess_image

# Default rows per encoder call. Graph mode compiles a graph for every new input shape, so every call
# runs exactly this many rows (the last batch padded): one compilation per process and batch size.
IMAGE_BATCH = 32
TEXT_BATCH = 64


class RetrievalModel:
    """Image and text embeddings in one space: L2-normalised float32 rows, so a dot product is a cosine.

    `fingerprint` identifies the weights (equal for a checkpoint and its export); `image_size` is (H, W);
    `source` is the checkpoint file or export folder the model came from.
    """

    def __init__(self, image_encoder, text_encoder, tokenizer, image_size, embed_dim: int, fingerprint: str,
                 source: str):
        self._image_encoder = image_encoder
        self._text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.image_size = tuple(int(v) for v in image_size)
        self.embed_dim = int(embed_dim)
        self.fingerprint = fingerprint
        self.source = source

    def __repr__(self) -> str:
        return (f"RetrievalModel(source={self.source!r}, fingerprint={self.fingerprint!r}, "
                f"image_size={self.image_size}, embed_dim={self.embed_dim})")

    def preprocess(self, image: ImageLike) -> np.ndarray:
        """One image (path or PIL) as the encoder's float32 [3, H, W] input; unreadable files raise CorruptImageError."""
        return preprocess_image(image, self.image_size)

    def encode_pixels(self, pixels: np.ndarray, batch_size: int = IMAGE_BATCH) -> np.ndarray:
        """Embeddings [N, D] of already preprocessed images [N, 3, H, W] (rows of `preprocess`)."""
        pixels = np.asarray(pixels, dtype=np.float32)
        expected = (3, *self.image_size)
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(f"pixels must have shape [N, {', '.join(map(str, expected))}], got {pixels.shape}")
        return self._run(self._image_encoder, pixels, batch_size)

    def encode_images(self, images: Union[ImageLike, Sequence[ImageLike]], batch_size: int = IMAGE_BATCH) -> np.ndarray:
        """Embeddings [N, D] of images given as paths or PIL images (one image gives [1, D])."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        images = list(images)
        # Preprocess one batch at a time: a long list never holds more than a batch of pixels.
        parts = [self.encode_pixels(np.stack([self.preprocess(image) for image in images[start:start + batch_size]]),
                                    batch_size)
                 for start in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.embed_dim), np.float32)

    def encode_texts(self, texts: Union[str, Sequence[str]], batch_size: int = TEXT_BATCH) -> np.ndarray:
        """Embeddings [N, D] of descriptions (one string gives [1, D]); captions over the context are cut."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        return self._run(self._text_encoder, self.tokenizer(texts), batch_size)

    def _run(self, encoder, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        import mindspore as ms

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(inputs), self.embed_dim), np.float32)
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            rows = len(batch)
            if rows < batch_size:
                # Repeat the last row rather than pad with zeros: every row stays a valid input.
                batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - rows, axis=0)])
            out[start:start + rows] = encoder(ms.Tensor(batch)).asnumpy()[:rows]
        return out


def load(path: str) -> RetrievalModel:
    """A RetrievalModel from a training checkpoint (file or run folder) or a `vpmnet export` folder."""
    import mindspore as ms

    from vpmnet.export import MANIFEST
    from vpmnet.runtime import resolve_device

    ms.set_context(mode=ms.GRAPH_MODE)
    device = resolve_device("auto")
    try:
        ms.set_device(device)
    except RuntimeError:
        # MindSpore fixes its device when the process runs its first kernel; after that it cannot change.
        if ms.get_context("device_target") != device:
            warnings.warn(f"MindSpore already runs on {ms.get_context('device_target')} in this process, so the "
                          f"model does too; call vpmnet.load before other MindSpore work to run on {device}")
    if os.path.isfile(os.path.join(path, MANIFEST)):
        return _from_export(path)
    return _from_checkpoint(path)


def _from_checkpoint(path: str) -> RetrievalModel:
    from vpmnet import checkpoint
    from vpmnet.model import ImageEncoder, TextEncoder, model_from_checkpoint

    file = checkpoint.resolve(path)
    model, cfg, record, tokenizer = model_from_checkpoint(file)
    return RetrievalModel(ImageEncoder(model), TextEncoder(model), tokenizer, cfg.model.image_size,
                          cfg.model.clip.embed_dim, record["fingerprint"], os.path.abspath(file))


def _from_export(folder: str) -> RetrievalModel:
    from vpmnet.clip.tokenizer import load_tokenizer
    from vpmnet.export import load_encoders

    image_graph, text_graph, manifest = load_encoders(folder)
    image_spec = manifest["image_encoder"]
    # preprocess_image normalises with CLIP's statistics; an export claiming others cannot be fed correctly.
    if not (np.allclose(image_spec["mean"], CLIP_MEAN) and np.allclose(image_spec["std"], CLIP_STD)):
        raise ValueError(f"{folder}: the export normalises images with mean {image_spec['mean']} and std "
                         f"{image_spec['std']}; this vpmnet preprocesses with CLIP's {CLIP_MEAN} / {CLIP_STD}")
    tokenizer = load_tokenizer(os.path.join(folder, manifest["text_encoder"]["tokenizer"]),
                               context_length=manifest["context_length"])
    return RetrievalModel(image_graph, text_graph, tokenizer, manifest["image_size"], manifest["embed_dim"],
                          manifest["fingerprint"], os.path.abspath(folder))
