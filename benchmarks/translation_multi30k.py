"""Multi30k translation benchmark, the attention story in numbers: the same BiLSTM encoder with the
LSTM decoder with Bahdanau attention, the LSTM decoder without attention (one fixed context vector)
and the Transformer decoder, each trained under the same wall-clock budget, then scored on the
validation split (1,014 pairs) with sacreBLEU (13a, detokenized output): overall, and by source
length, where the fixed-vector bottleneck shows as BLEU falling with length.

    python benchmarks/translation_multi30k.py --minutes 10 [--epochs E] [--source de --target en] [--width 256]
        [--beam-size 4] [--decoders attention no_attention transformer]
        [--out benchmarks/results/translation_multi30k.json] [-- FIT OVERRIDES...]

Every model comes from tasks/translation/multi30k_en_de.yaml with the direction, the decoder and its
width replaced; overrides after ``--`` go to the recipe as on ``mms2s fit`` (on a CPU, a smaller
encoder and vocabulary: ``-- --model.encoder_args '{"embed_dim": 128, "hidden_size": 128, "num_layers": 1}'
--data.vocab_size 4000 --data.batch_size 64``). Before each run a few timed steps estimate how many
steps fit in the budget, and the learning-rate schedule (10% warmup, cosine decay) is set to end
there (``--minutes`` also caps the run). Step times vary on a shared machine; ``--epochs E`` gives
every decoder the same number of updates instead (the schedule ends after E epochs; ``--minutes``
is then only a cap). Validation during training is off; the split is decoded once at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule

from multimodal_s2s.apps.training import SuiteCLI, max_time, suite_cli
from multimodal_s2s.metrics.text import CorpusBLEU

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO_ROOT / "tasks" / "translation" / "multi30k_en_de.yaml"
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "data" / "multi30k"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "translation_multi30k.json"
SECONDS_PER_MINUTE = 60
#: Timed steps before each run (the first WARMUP_STEPS are not counted), and the share of the budget
#: planned for training steps (the rest absorbs start-up and the variation of step times).
CALIBRATION_STEPS, WARMUP_STEPS, PLANNED_SHARE = 12, 2, 0.9
#: Learning-rate warmup as a share of the planned steps (the recipe's 500 steps suit full runs only).
LR_WARMUP_SHARE = 0.1
#: Source-length buckets in words (whitespace-separated), upper bound inclusive; None = no bound.
LENGTH_BUCKETS = [(1, 10), (11, 15), (16, 20), (21, None)]
SAMPLES = 5
DECODERS = {
    "attention": "rnn_attention",
    "no_attention": "rnn",
    "transformer": "transformer",
}
TRANSFORMER_LAYERS, TRANSFORMER_HEADS = 3, 4
#: Published de->en figures on test_2016 (see ../shared/data/README.md); other tokenization and split.
REFERENCE = {
    "GRU + Bahdanau attention, de->en, test_2016": 28.3,
    "small Transformer, de->en, test_2016": 36.5,
}


def decoder_args(variant: str, width: int, dropout: float) -> dict[str, Any]:
    """Decoder settings of one width: the RNNs have ``width`` hidden units, the Transformer d_model width/2."""
    if variant == "transformer":
        d_model = width // 2
        return {"d_model": d_model, "num_layers": TRANSFORMER_LAYERS, "num_heads": TRANSFORMER_HEADS,
                "ff_dim": 2 * width, "dropout": dropout}
    return {"embed_dim": width // 2, "hidden_size": width, "dropout": dropout}


def build(args: argparse.Namespace, variant: str, max_steps: int) -> SuiteCLI:
    """The recipe's module and trainer for ``variant`` (not run), validation and checkpoints off."""
    cli_args = [
        "--config", str(args.recipe), "--data.root", str(args.root),
        "--data.source_lang", args.source, "--data.target_lang", args.target,
        "--model.decoder", DECODERS[variant],
        "--model.decoder_args", json.dumps(decoder_args(variant, args.width, args.dropout)),
        "--model.beam_size", str(args.beam_size),
        "--model.warmup_steps", str(max(1, int(LR_WARMUP_SHARE * max_steps))),
        "--trainer.max_steps", str(max_steps), "--trainer.max_epochs", "-1",
        "--trainer.max_time", max_time(args.minutes),
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.callbacks", "[]", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        *args.overrides,
    ]
    return suite_cli(cli_args, run=False)


class StepTimer(Callback):
    """Wall time at the end of every training step."""

    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())


def seconds_per_step(args: argparse.Namespace, variant: str, data: LightningDataModule) -> float:
    """Median step time of a throwaway run of CALIBRATION_STEPS steps."""
    cli = build(args, variant, CALIBRATION_STEPS)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=data)
    counted = timer.times[WARMUP_STEPS:]
    return statistics.median(later - earlier for earlier, later in itertools.pairwise(counted))


@torch.no_grad()
def translate_validation(module: LightningModule, data: LightningDataModule) -> list[str]:
    """Decode the validation split in order with the module's decoding options -> detokenized hypotheses."""
    module.eval()
    device = next(module.parameters()).device
    hypotheses = []
    for batch in data.val_dataloader():
        hypotheses += module.generate(batch["inputs"].to(device), batch["lengths"].to(device))
    return hypotheses


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    metric = CorpusBLEU()
    metric.update(hypotheses, [[reference] for reference in references])
    return round(metric.compute()["bleu"], 2)


def bleu_by_length(sources: list[str], hypotheses: list[str], references: list[str]) -> dict[str, dict]:
    """{"1-10": {"pairs": n, "bleu": b}, ...} over LENGTH_BUCKETS of source words."""
    report = {}
    for low, high in LENGTH_BUCKETS:
        chosen = [i for i, source in enumerate(sources) if low <= len(source.split()) <= (high or len(source.split()))]
        name = f"{low}-{high}" if high else f"{low}+"
        report[name] = {
            "pairs": len(chosen),
            "bleu": corpus_bleu([hypotheses[i] for i in chosen], [references[i] for i in chosen]) if chosen else None,
        }
    return report


def run_variant(args: argparse.Namespace, variant: str, data: LightningDataModule) -> dict[str, Any]:
    """Calibrate, train under the budget, decode the validation split; the variant's report."""
    if args.epochs is None:
        step_seconds = seconds_per_step(args, variant, data)
        planned = max(1, int(PLANNED_SHARE * args.minutes * SECONDS_PER_MINUTE / step_seconds))
        print(f"{variant}: {step_seconds:.3f} s/step -> {planned} steps planned", flush=True)
    else:
        step_seconds, planned = None, max(1, round(args.epochs * len(data.train_dataloader())))
    cli = build(args, variant, planned)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=data)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    hypotheses = translate_validation(cli.model, data)
    decode_seconds = time.perf_counter() - start
    sources, references = zip(*data.texts["val"], strict=True)
    bleu = corpus_bleu(hypotheses, list(references))
    print(f"{variant}: val BLEU {bleu} after {cli.trainer.global_step} steps", flush=True)
    return {
        "decoder": DECODERS[variant],
        "decoder_args": decoder_args(variant, args.width, args.dropout),
        "parameters": sum(p.numel() for p in cli.model.model.parameters()),
        "calibrated_seconds_per_step": step_seconds and round(step_seconds, 4),
        "planned_steps": planned,
        "steps": cli.trainer.global_step,
        "epochs": round(cli.trainer.global_step / len(data.train_dataloader()), 2),
        "train_seconds": round(train_seconds, 1),
        "decode_seconds": round(decode_seconds, 1),
        "final_train_loss": round(float(cli.trainer.callback_metrics.get("train/loss", float("nan"))), 4),
        "val_bleu": bleu,
        "bleu_by_source_length": bleu_by_length(list(sources), hypotheses, list(references)),
        "samples": [
            {"source": s, "reference": r, "hypothesis": h}
            for s, r, h in list(zip(sources, references, hypotheses, strict=True))[:SAMPLES]
        ],
    }


def device_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ours, overrides = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each decoder")
    parser.add_argument(
        "--epochs", type=float, default=None, help="budget in epochs instead (--minutes then only caps each run)"
    )
    parser.add_argument("--source", default="de", help="source language suffix")
    parser.add_argument("--target", default="en", help="target language suffix")
    parser.add_argument("--width", type=int, default=512, help="RNN hidden size; the Transformer's d_model is half")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--decoders", nargs="+", choices=list(DECODERS), default=list(DECODERS))
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(ours)
    args.overrides = overrides
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    data = build(args, args.decoders[0], CALIBRATION_STEPS).datamodule
    data.setup("fit")  # tokenizers and pairs once, shared by every decoder
    report = {
        "benchmark": "translation_multi30k",
        "direction": f"{args.source}->{args.target}",
        "split": f"val ({len(data.texts['val'])} pairs)",
        "metric": "sacreBLEU 13a, detokenized, cased, beam search",
        "device": device_description(),
        "torch": torch.__version__,
        "budget_per_decoder": {"minutes": args.minutes, "epochs": args.epochs},
        "command": ["benchmarks/translation_multi30k.py", *(sys.argv[1:] if argv is None else argv)],
        "tokenizer": {
            "kind": data.hparams.tokenizer,
            "source_vocab": data.source_tokenizer.vocab_size,
            "target_vocab": data.tokenizer.vocab_size,
            "joint": data.hparams.joint_vocab,
        },
        "training_pairs": len(data.texts["train"]),
        "models": {},
        "reference": REFERENCE,
    }
    for variant in args.decoders:
        report["models"][variant] = run_variant(args, variant, data)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))  # after each model: partial results
    print(json.dumps({name: model["val_bleu"] for name, model in report["models"].items()}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
