"""VPM-Net text-to-image person retrieval in MindSpore: CLIP + VPT prompts + KAN adapters + MINP loss."""
__version__ = "0.1.0"


def build_model(config, num_classes=None, **kwargs):
    """The VPMNet cell described by `config`: a `vpmnet.config.Config` or a YAML path (see `vpmnet.model.build_model`)."""
    from vpmnet.model import build_model as _build

    if isinstance(config, (str, bytes)) or hasattr(config, "__fspath__"):
        from vpmnet.config import load_config

        config = load_config(config)
    return _build(config, num_classes=num_classes, **kwargs)


def load(path):
    """A retrieval model from a training checkpoint or an export folder (see `vpmnet.inference.load`)."""
    from vpmnet.inference import load as _load

    return _load(path)
