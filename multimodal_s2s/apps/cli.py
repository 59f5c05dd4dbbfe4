"""The ``mms2s`` command.

``mms2s fit|validate|test|predict --config tasks/<task>/<recipe>.yaml [--section.key value ...]``
runs LightningCLI (overrides from the command line; the resolved config is saved with the run).
Every other sub-command is an app module with ``add_arguments(parser)`` and ``run(args) -> int``,
imported only when it is asked for. Torch's thread count is set before ``run`` unless the module says that it
sets it where it uses torch (``CONFIGURES_THREADS = True``: ``caption``, whose ONNX path imports no torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys

LIGHTNING_COMMANDS = {
    "fit": "train from a YAML recipe: mms2s fit --config tasks/TASK/RECIPE.yaml [--ckpt_path last]",
    "validate": "validate a checkpoint: mms2s validate --config RECIPE.yaml --ckpt_path CKPT",
    "test": "test a checkpoint: mms2s test --config RECIPE.yaml --ckpt_path CKPT",
    "predict": "write a checkpoint's predictions: mms2s predict --config RECIPE.yaml --ckpt_path CKPT",
}
#: sub-command -> (module with add_arguments(parser) and run(args) -> exit code, one-line help)
APPS: dict[str, tuple[str, str]] = {
    "caption": ("multimodal_s2s.apps.caption", "caption images with a captioning checkpoint"),
    "demo": ("multimodal_s2s.apps.demo", "serve a demo web page for a checkpoint"),
    "translate": ("multimodal_s2s.apps.translate", "translate lines of text with a translation checkpoint"),
    "segment": ("multimodal_s2s.apps.segment", "write label and overlay PNGs with a segmentation checkpoint"),
    "export": ("multimodal_s2s.apps.export", "export a checkpoint to ONNX"),
    "transcribe": ("multimodal_s2s.apps.transcribe", "transcribe audio files with an ASR checkpoint"),
    "import": ("multimodal_s2s.apps.import_model", "import another library's checkpoint (marian) as a suite one"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from multimodal_s2s.apps.training import run_lightning_cli

        return run_lightning_cli(argv)
    parser = argparse.ArgumentParser(prog="mms2s", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in LIGHTNING_COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    chosen = argv[0] if argv and argv[0] in APPS else None
    for name, (module_name, help_text) in APPS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
    args = parser.parse_args(argv)
    module = importlib.import_module(APPS[args.command][0])
    if not getattr(module, "CONFIGURES_THREADS", False):
        from multimodal_s2s.threads import configure_threads

        configure_threads()
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
