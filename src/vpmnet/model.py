"""VPMNet: CLIP encoders with VPT prompts, KAN adapters on the global features, IRRA heads, and the losses."""
from __future__ import annotations

import re
from typing import Optional

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from vpmnet import losses
from vpmnet.clip.model import CLIP
from vpmnet.config import Config
from vpmnet.irra import ImplicitRelationReasoning
from vpmnet.kan import KANAdapter
from vpmnet.prompts import prompted_layers


class VPMNet(nn.Cell):
    """Training graph: `construct(images, caption_ids, mlm_ids, mlm_labels, pids) -> (total, terms)`.

    `terms` holds each weighted loss in `cfg.loss.names` order. `encode_image` / `encode_text` give the
    unnormalised retrieval features (after the KAN adapters) used by evaluation, search and export.
    """

    def __init__(self, cfg: Config, num_classes: int, world_size: int = 1):
        super().__init__()
        self.cfg = cfg
        clip_cfg = cfg.model.clip
        flash = cfg.model.attention == "flash"
        self.clip = CLIP(clip_cfg, image_size=cfg.model.image_size, prompts=cfg.prompts, flash=flash)
        dim = clip_cfg.embed_dim
        self.use_kan = cfg.kan.enabled
        if self.use_kan:
            kan_args = (cfg.kan.hidden, cfg.kan.grid_size, cfg.kan.spline_order, tuple(cfg.kan.grid_range))
            self.image_adapter = KANAdapter(dim, *kan_args)
            self.text_adapter = KANAdapter(dim, *kan_args)
        self.names = tuple(cfg.loss.names)
        self.weights = tuple(cfg.loss.weight(n) for n in self.names)
        self.logit_scale = cfg.loss.logit_scale
        self.minp = cfg.loss.minp
        needs_logits = "id" in self.names or ("minp" in self.names and self.minp.form == "identity")
        self.num_classes = num_classes
        if needs_logits:
            if num_classes < 1:
                raise ValueError("the ID loss needs the number of training identities (num_classes >= 1)")
            # IRRA: weight ~ N(0, 0.001), bias 0.
            self.classifier = nn.Dense(dim, num_classes, weight_init=Normal(0.001), bias_init="zeros")
        self.needs_logits = needs_logits
        self.use_mlm = "mlm" in self.names
        if self.use_mlm:
            self.irr = ImplicitRelationReasoning(dim, cfg.model.cmt_depth, clip_cfg.text.vocab_size, flash=flash)
        self.masked_global_text = cfg.model.masked_global_text
        # Contrastive losses must see the global batch: gather features across ranks (AllGather's gradient
        # is a reduce-scatter, so with mean-reduced gradients the update equals one big batch).
        self.world_size = world_size
        if world_size > 1:
            self.all_gather = ops.AllGather()

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
            mlm_scores = self.irr(mlm_tokens, image_tokens).astype(ms.float32)

        all_image, all_text, all_pids = image_feats, text_feats, pids
        if self.world_size > 1:
            all_image = self.all_gather(image_feats)
            all_text = self.all_gather(text_feats)
            all_pids = self.all_gather(pids)

        terms = ()
        total = ops.zeros((), ms.float32)
        for name, weight in zip(self.names, self.weights):
            if name == "sdm":
                value = losses.sdm_loss(all_image, all_text, all_pids, self.logit_scale)
            elif name == "itc":
                value = losses.itc_loss(all_image, all_text, self.logit_scale)
            elif name == "id":
                value = losses.id_loss(image_logits, text_logits, pids)
            elif name == "mlm":
                value = losses.mlm_loss(mlm_scores, mlm_labels)
            else:
                value = losses.minp_loss(all_image, all_text, all_pids, self.minp.alpha, self.minp.beta,
                                         self.minp.reg, self.minp.form, self.logit_scale, image_logits, text_logits)
            value = value * weight
            terms = terms + (value,)
            total = total + value
        return total, terms


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


def build_model(cfg: Config, num_classes: Optional[int] = None, world_size: int = 1,
                load_pretrained: bool = True) -> VPMNet:
    """The VPMNet of `cfg`, with pretrained CLIP weights from `cfg.model.pretrained` if set, frozen per policy.

    `num_classes` defaults to 1 for models built only to encode (no training identities known).
    """
    model = VPMNet(cfg, num_classes if num_classes is not None else 1, world_size)
    if load_pretrained and cfg.model.pretrained:
        from vpmnet.clip.weights import load_clip_weights

        load_clip_weights(model.clip, cfg.model.pretrained)
    freeze(model, cfg)
    return model
