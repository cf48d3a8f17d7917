"""VPMNet: CLIP encoders with VPT prompts, KAN adapters on the global features, IRRA heads, and the losses."""
from __future__ import annotations

import json
import os
import re
from typing import Optional

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from vpmnet import checkpoint, losses
from vpmnet.clip.config import CLIPConfig
from vpmnet.clip.model import CLIP
from vpmnet.config import Config, from_dict
from vpmnet.irra import ImplicitRelationReasoning
from vpmnet.kan import KANAdapter
from vpmnet.prompts import prompted_layers


class VPMNet(nn.Cell):
    """Training graph: `construct(images, caption_ids, mlm_ids, mlm_labels, pids) -> (total, terms)`.

    `terms` holds each weighted loss in `cfg.loss.names` order. `encode_image` / `encode_text` give the
    unnormalised retrieval features (after the KAN adapters) used by evaluation, search and export.
    """

    def __init__(self, cfg: Config, num_classes: int, world_size: int = 1, rank: int = 0):
        super().__init__()
        clip_cfg = cfg.model.clip
        flash = cfg.model.attention == "flash"
        self.clip = CLIP(clip_cfg, image_size=cfg.model.image_size, prompts=cfg.prompts, flash=flash)
        dim = clip_cfg.embed_dim
        self.use_kan = cfg.kan.enabled
        if self.use_kan:
            kan_args = (cfg.kan.hidden, cfg.kan.grid_size, cfg.kan.spline_order, tuple(cfg.kan.grid_range))
            self.image_adapter = KANAdapter(dim, *kan_args)
            self.text_adapter = KANAdapter(dim, *kan_args)
        self.losses = losses.LossComposer.from_config(cfg.loss)
        self.minp = cfg.loss.minp
        names = tuple(cfg.loss.names)
        needs_logits = "id" in names or ("minp" in names and self.minp.form == "identity")
        self.num_classes = num_classes
        if needs_logits:
            if num_classes < 1:
                raise ValueError("the ID loss needs the number of training identities (num_classes >= 1)")
            # IRRA: weight ~ N(0, 0.001), bias 0.
            self.classifier = nn.Dense(dim, num_classes, weight_init=Normal(0.001), bias_init="zeros")
        self.needs_logits = needs_logits
        self.use_mlm = "mlm" in names
        self.mlm_index = names.index("mlm") if self.use_mlm else -1
        if self.use_mlm:
            self.irr = ImplicitRelationReasoning(dim, cfg.model.cmt_depth, clip_cfg.text.vocab_size,
                                                 clip_cfg.text.context_length, cfg.model.mlm_positions, flash)
        self.masked_global_text = cfg.model.masked_global_text
        # The losses must see the global batch: gather features, logits and pids across ranks. Every rank then
        # computes the same loss, AllGather's gradient sums the ranks' copies (a reduce-scatter), and the
        # mean-reducing gradient reducer divides by the world size: the update equals one big batch.
        self.world_size = world_size
        if world_size > 1:
            self.all_gather = GatherFromRanks(rank)

    def encode_image(self, images):
        feats = self.clip.visual(images)[1].astype(ms.float32)
        return self.image_adapter(feats) if self.use_kan else feats

    def encode_text(self, ids):
        feats = self.clip.text(ids)[1].astype(ms.float32)
        return self.text_adapter(feats) if self.use_kan else feats

    def construct(self, images, caption_ids, mlm_ids, mlm_labels, pids):
        image_tokens, image_feats = self.clip.visual(images)
        global_ids = mlm_ids if self.masked_global_text else caption_ids
        text_tokens, text_feats = self.clip.text(global_ids)
        image_feats = image_feats.astype(ms.float32)
        text_feats = text_feats.astype(ms.float32)
        if self.use_kan:
            image_feats = self.image_adapter(image_feats)
            text_feats = self.text_adapter(text_feats)

        image_logits = None
        text_logits = None
        if self.needs_logits:
            image_logits = self.classifier(image_feats).astype(ms.float32)
            text_logits = self.classifier(text_feats).astype(ms.float32)
        mlm_scores = None
        if self.use_mlm:
            # With the IRRA aliasing the global branch already encoded the masked caption: reuse it.
            mlm_tokens = text_tokens if self.masked_global_text else self.clip.text(mlm_ids)[0]
            mlm_scores, mlm_labels = self.irr(mlm_tokens, image_tokens, mlm_labels)
            mlm_scores = mlm_scores.astype(ms.float32)

        if self.world_size > 1:
            image_feats, text_feats, pids = (self.all_gather(image_feats), self.all_gather(text_feats),
                                             self.all_gather(pids))
            if self.needs_logits:
                image_logits, text_logits = self.all_gather(image_logits), self.all_gather(text_logits)
        total, terms = self.losses(image_feats, text_feats, pids, image_logits, text_logits, mlm_scores, mlm_labels)
        if self.world_size > 1 and self.use_mlm:
            # MLM stays per rank (its logits are large) and averages over this rank's masked tokens. Scaled by
            # world x local / global masked tokens, the ranks' mean is the mean over all of them.
            local = (mlm_labels > 0).astype(ms.float32).sum()
            share = local * self.world_size / ops.maximum(self.all_gather.reduce(local), 1.0)
            i = self.mlm_index
            total = total + terms[i] * (share - 1)
            terms = terms[:i] + (terms[i] * share,) + terms[i + 1:]
        return total, terms


class GatherFromRanks(nn.Cell):
    """AllGather along the batch whose gradient is the sum over ranks of this rank's slice.

    That is a reduce-scatter, which AllGather's own gradient uses but the CPU backend lacks; AllReduce
    and a slice compute it everywhere.
    """

    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank
        self.gather = ops.AllGather()
        self.reduce = ops.AllReduce()

    def construct(self, x):
        return self.gather(x)

    def bprop(self, x, out, dout):
        rows = x.shape[0]
        return (self.reduce(dout)[self.rank * rows:(self.rank + 1) * rows],)


class RetrievalEncoder(nn.Cell):
    """One modality of VPMNet -> L2-normalised retrieval features [B,D]: what evaluation, search and export run."""

    def __init__(self, model: VPMNet, modality: str):
        super().__init__()
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        self.model = model
        self.image = modality == "image"

    def construct(self, inputs):
        feats = self.model.encode_image(inputs) if self.image else self.model.encode_text(inputs)
        return _l2_normalize(feats)


class ImageEncoder(RetrievalEncoder):
    """images [B,3,H,W] float32 -> features [B,D]."""

    def __init__(self, model: VPMNet):
        super().__init__(model, "image")


class TextEncoder(RetrievalEncoder):
    """caption ids [B,L] int32 -> features [B,D]."""

    def __init__(self, model: VPMNet):
        super().__init__(model, "text")


def _l2_normalize(x):
    return x / ops.maximum(ops.norm(x, dim=-1, keepdim=True), 1e-12)


def freeze(model: VPMNet, cfg: Config) -> None:
    """Apply `prompts.freeze`: `prompted` freezes the prompted CLIP layers, `backbone` all of CLIP.

    Prompt parameters themselves always train.
    """
    policy = cfg.prompts.freeze
    if policy == "none":
        return
    frozen_layers = {
        "visual": set(prompted_layers(cfg.prompts.mode, cfg.model.clip.vision.layers)) if cfg.prompts.vision_length else set(),
        "text": set(prompted_layers(cfg.prompts.mode, cfg.model.clip.text.layers)) if cfg.prompts.text_length else set(),
    }
    layer_of = re.compile(r"^clip\.(visual|text)\.transformer\.resblocks\.(\d+)\.")
    for param in model.clip.get_parameters():
        if ".prompt." in param.name:
            continue
        if policy == "backbone":
            param.requires_grad = False
            continue
        match = layer_of.match(param.name)
        if match and int(match.group(2)) in frozen_layers[match.group(1)]:
            param.requires_grad = False


def resolve_architecture(cfg: Config) -> None:
    """Take the CLIP sizes from `cfg.model.pretrained`'s config.json when that folder exists."""
    path = os.path.join(cfg.model.pretrained, "config.json") if cfg.model.pretrained else ""
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            cfg.model.clip = from_dict(CLIPConfig, json.load(f), "model.clip.", path)


def build_model(cfg: Config, num_classes: Optional[int] = None, world_size: int = 1, rank: int = 0,
                load_pretrained: bool = True) -> VPMNet:
    """The VPMNet of `cfg`, with pretrained CLIP weights from `cfg.model.pretrained` if set, frozen per policy.

    `num_classes` defaults to 1 for models built only to encode (no training identities known).
    """
    if load_pretrained and cfg.model.pretrained and not os.path.isdir(cfg.model.pretrained):
        raise FileNotFoundError(f"model.pretrained: no folder {cfg.model.pretrained} (convert CLIP weights with "
                                "`vpmnet convert-clip SRC DIR`, or set model.pretrained= to train from scratch)")
    resolve_architecture(cfg)
    model = VPMNet(cfg, num_classes if num_classes is not None else 1, world_size, rank)
    if load_pretrained and cfg.model.pretrained:
        from vpmnet.clip.weights import load_clip_weights

        load_clip_weights(model.clip, cfg.model.pretrained)
    freeze(model, cfg)
    return model


def model_from_checkpoint(path: str):
    """(VPMNet in eval mode, config, record, tokenizer) from a checkpoint file or run folder."""
    from vpmnet.clip.tokenizer import load_tokenizer

    path = checkpoint.resolve(path)
    weights, _, record = checkpoint.load(path)
    cfg = from_dict(Config, record["config"], source=path)
    model = build_model(cfg, record["num_classes"], load_pretrained=False)
    checkpoint.assign(model, weights, path)
    model.set_train(False)
    tokenizer = load_tokenizer(os.path.join(os.path.dirname(path), record.get("tokenizer", "tokenizer")),
                               context_length=cfg.data.text_length)
    return model, cfg, record, tokenizer
