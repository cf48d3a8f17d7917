"""`vpmnet params`: trainable and frozen parameters of a config, per module, and what prompts and KAN add."""
from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from typing import Dict

from vpmnet.config import Config, load_config

# Training identities of the public benchmarks (reference notes §1e), for configs whose data is not on disk.
KNOWN_CLASSES = {"CUHK-PEDES": 11003, "ICFG-PEDES": 3102, "RSTPReid": 3701}

MODULES = (
    ("prompts (vision)", lambda n: n.startswith("clip.visual.") and ".prompt." in n),
    ("prompts (text)", lambda n: n.startswith("clip.text.") and ".prompt." in n),
    ("CLIP vision", lambda n: n.startswith("clip.visual.")),
    ("CLIP text", lambda n: n.startswith("clip.text.")),
    ("KAN adapters", lambda n: n.startswith(("image_adapter.", "text_adapter."))),
    ("IRR cross-modal + MLM head", lambda n: n.startswith("irr.")),
    ("ID classifier", lambda n: n.startswith("classifier.")),
)


def count_parameters(model) -> "OrderedDict[str, Dict[str, int]]":
    """{module: {"trainable": n, "frozen": n}} over `MODULES`, each parameter counted once (first match)."""
    table: "OrderedDict[str, Dict[str, int]]" = OrderedDict((name, {"trainable": 0, "frozen": 0}) for name, _ in MODULES)
    for param in model.get_parameters():
        if param.name.endswith(".grid"):
            continue  # KAN knot vectors are fixed buffers, not parameters
        kind = "trainable" if param.requires_grad else "frozen"
        for name, belongs in MODULES:
            if belongs(param.name):
                table[name][kind] += int(param.size)
                break
        else:
            raise ValueError(f"parameter {param.name} belongs to no module of the summary")
    return table


def summarize(cfg: Config, num_classes: int) -> dict:
    from vpmnet.model import build_model

    model = build_model(cfg, num_classes, load_pretrained=False)
    table = count_parameters(model)
    prompts = table["prompts (vision)"]["trainable"] + table["prompts (text)"]["trainable"]
    kan = sum(table["KAN adapters"].values())
    return {
        "modules": table,
        "trainable": sum(v["trainable"] for v in table.values()),
        "frozen": sum(v["frozen"] for v in table.values()),
        "added_by_prompts": prompts,
        "added_by_kan": kan,
        "num_classes": num_classes,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--num-classes", type=int, help="training identities (default: the dataset's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _num_classes(cfg: Config) -> int:
    if cfg.data.dataset in KNOWN_CLASSES:
        return KNOWN_CLASSES[cfg.data.dataset]
    from vpmnet.data import load_dataset

    return load_dataset(cfg.data.dataset, cfg.data.root, "skip").num_classes


def run(args) -> int:
    import mindspore as ms

    ms.set_device("CPU")
    cfg = load_config(args.config, args.overrides)
    summary = summarize(cfg, args.num_classes or _num_classes(cfg))
    if args.json:
        print(json.dumps(summary))
        return 0
    width = max(len(n) for n in summary["modules"]) + 2
    print(f"{'module':<{width}}{'trainable':>14}{'frozen':>14}")
    for name, counts in summary["modules"].items():
        print(f"{name:<{width}}{counts['trainable']:>14,}{counts['frozen']:>14,}")
    print(f"{'total':<{width}}{summary['trainable']:>14,}{summary['frozen']:>14,}")
    print(f"added by prompts: {summary['added_by_prompts']:,} ({summary['added_by_prompts'] / 1e6:.3f}M); "
          f"added by KAN: {summary['added_by_kan']:,} ({summary['added_by_kan'] / 1e6:.3f}M); "
          f"ID classes: {summary['num_classes']}")
    return 0
