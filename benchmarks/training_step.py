"""Training speed side by side: one training step (forward, loss, backward, AdamW step) of the suite's
model of each task against the closest peer of another library at equal input shapes and batch, plus the
suite's model under ``torch.compile``. Writes JSON.

- captioning: shapes.yaml's model, timm resnet10t (half width, to stride 8) + a 2-layer Transformer decoder
  (d=128), against HF VisionEncoderDecoderModel with the same timm backbone as its encoder (so the encoders
  are equal) and a BERT decoder of the same width and depth.
- asr: espeak.yaml's model, a conv-subsampled (4x) audio Transformer (4 layers, d=144) + a 2-layer decoder
  with the hybrid CTC loss, against openai-whisper's Whisper of the same dimensions (its conv front end
  subsamples 2x, so its encoder sees twice the rows).
- segmentation: camvid_unet.yaml's model (timm resnet18 + the skip decoder) against smp's Unet on resnet18;
  segnet: camvid_segnet.yaml's SegNet (VGG16-BN encoder, mirrored decoder with max-unpooling) against smp's
  Unet with the same VGG16-BN encoder (not the same decoder: SegNet mirrors all 13 convolutions).
- translation: multi30k_en_de.yaml's 2-layer BiLSTM (256 a direction) + LSTM decoder with additive attention
  (512), against HF BART with d=512: 2 encoder layers, 1 decoder layer, 8 heads, FF 2048;
  translation_transformer: multi30k_en_de_transformer.yaml's Transformer encoder and decoder of that same
  shape (pre-LN, GELU, sinusoidal positions) against the same BART.

Every contender gets the same batch and the same loss on its logits (label-smoothed cross-entropy; ASR
adds the suite's CTC term, as the recipe trains). The settings run alternately, each sample the mean of
``--steps`` steps, the figure the median of ``--repeats`` samples. ``ratio`` = peer time / suite time
(>= 1: the suite is at least as fast); ``compile_gain`` = eager time / compiled time. ``--device cuda``
runs every contender on the GPU (the clock stops after a synchronize), ``--precision bf16-mixed`` under
``torch.autocast(bfloat16)`` as Lightning's bf16-mixed trains; ``--batch-scale N`` multiplies every
task's batch (a GPU is fed far larger batches than the CPU recipes use); ``--profile`` prints where the
suite's step spends its time (torch.profiler, the operators with the most self time on the device).

    .venv/bin/python benchmarks/training_step.py [--tasks captioning asr ...] [--repeats 5] [--steps 3]
        [--no-compile] [--device cpu|cuda] [--precision 32|bf16-mixed] [--batch-scale 1] [--profile]
        [--out benchmarks/results/training_step.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from torch.nn import functional as F

from multimodal_s2s import create_model
from multimodal_s2s.models.ctc import CTCHead
from multimodal_s2s.threads import configure_threads
from multimodal_s2s.types import PAD_ID

REPO_ROOT = Path(__file__).resolve().parents[1]
LABEL_SMOOTHING = 0.1


@dataclass
class Contender:
    """A model and the loss of one training step on the fixed batch (``loss(model) -> scalar``)."""

    name: str
    model: nn.Module
    loss: Callable[[nn.Module], Tensor]


Pair = tuple[Contender, Contender]  # (the suite's, the peer's)


def recipe_model(recipe: str) -> dict:
    """The ``model.init_args`` of a recipe under tasks/."""
    return yaml.safe_load((REPO_ROOT / "tasks" / recipe).read_text())["model"]["init_args"]


def token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """logits (B, L, V), targets (B, L) -> label-smoothed cross-entropy in float32, PAD ignored."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=PAD_ID,
                           label_smoothing=LABEL_SMOOTHING)


def random_tokens(batch: int, length: int, vocab: int) -> Tensor:
    """(B, length) ids in 4..vocab-1 (past the special ids), BOS first."""
    tokens = torch.randint(4, vocab, (batch, length))
    tokens[:, 0] = 1
    return tokens


def suite_text_model(recipe: dict, vocab: int, source_vocab: int | None = None) -> nn.Module:
    encoder_args = dict(recipe.get("encoder_args") or {})
    if source_vocab is not None:
        encoder_args["vocab_size"] = source_vocab
    decoder_args = recipe.get("decoder_args")
    return create_model(recipe["encoder"], recipe["decoder"], encoder_args, decoder_args, vocab_size=vocab)


def captioning(batch: int, device: torch.device, length: int = 14, vocab: int = 40, size: int = 64) -> Pair:
    from transformers import BertConfig, BertLMHeadModel, ResNetConfig, ResNetModel, VisionEncoderDecoderModel
    from transformers.modeling_outputs import BaseModelOutput

    recipe = recipe_model("captioning/shapes.yaml")

    class TimmGrid(ResNetModel):
        """An HF encoder around the recipe's own timm backbone (the same architecture as the suite's): its
        deepest grid (B, C, h, w) becomes rows (B, h*w, C), which the decoder's cross-attention needs."""

        def __init__(self, config):
            super().__init__(config)
            self.embedder = self.encoder = self.pooler = None  # replaced by the timm backbone
            self.backbone = create_model(recipe["encoder"], recipe["decoder"], recipe["encoder_args"],
                                         recipe["decoder_args"], vocab_size=vocab).encoder.backbone

        def forward(self, pixel_values, **kwargs):
            grid = self.backbone(pixel_values)[-1]  # (B, C, h, w)
            return BaseModelOutput(last_hidden_state=grid.flatten(2).transpose(1, 2))

    images, tokens = torch.randn(batch, 3, size, size).to(device), random_tokens(batch, length, vocab).to(device)
    ours = suite_text_model(recipe, vocab)
    args = recipe["decoder_args"]
    width, depth, heads, dropout = (args[k] for k in ("d_model", "num_layers", "num_heads", "dropout"))
    resnet = ResNetConfig(embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1], layer_type="basic")
    resnet.hidden_size = ours.encoder.info.channels[-1]  # the grid's width, which the HF model projects from
    bert = BertConfig(vocab_size=vocab, hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                      intermediate_size=args["ff_dim"], hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout, max_position_embeddings=64, is_decoder=True,
                      add_cross_attention=True)
    peer = VisionEncoderDecoderModel(encoder=TimmGrid(resnet), decoder=BertLMHeadModel(bert))
    return (
        Contender("suite", ours, lambda m: token_loss(m(images, tokens[:, :-1]), tokens[:, 1:])),
        Contender("hf_vision_encoder_decoder", peer,
                  lambda m: token_loss(m(pixel_values=images, decoder_input_ids=tokens[:, :-1]).logits, tokens[:, 1:])),
    )


class SuiteASR(nn.Module):
    """The suite's ASR model with its CTC head: ``(1 - w) * attention + w * CTC`` as Seq2SeqModule trains."""

    def __init__(self, recipe: dict, vocab: int):
        super().__init__()
        self.model = suite_text_model(recipe, vocab)
        self.ctc_head, self.ctc_weight = CTCHead(self.model.encoder.info.out_dim, vocab), recipe["ctc_weight"]

    def forward(self, features: Tensor, lengths: Tensor, tokens: Tensor) -> Tensor:
        encoded = self.model.encode(features, lengths)
        attention = token_loss(self.model.decoder(tokens[:, :-1], encoded), tokens[:, 1:])
        return (1 - self.ctc_weight) * attention + self.ctc_weight * self.ctc_head.loss(encoded, tokens[:, 1:])


def asr(batch: int, device: torch.device, frames: int = 400, length: int = 48, vocab: int = 32) -> Pair:
    from whisper.model import ModelDimensions, Whisper

    recipe = recipe_model("asr/espeak.yaml")
    features, tokens = torch.randn(batch, 80, frames).to(device), random_tokens(batch, length, vocab).to(device)
    lengths = torch.full((batch,), frames, device=device)
    encoder_args, decoder_args = recipe["encoder_args"], recipe["decoder_args"]
    dims = ModelDimensions(n_mels=80, n_audio_ctx=frames // 2, n_audio_state=encoder_args["d_model"],
                           n_audio_head=encoder_args["num_heads"], n_audio_layer=encoder_args["num_layers"],
                           n_vocab=vocab, n_text_ctx=length, n_text_state=decoder_args["d_model"],
                           n_text_head=decoder_args["num_heads"], n_text_layer=decoder_args["num_layers"])
    return (
        Contender("suite", SuiteASR(recipe, vocab), lambda m: m(features, lengths, tokens)),
        Contender("whisper", Whisper(dims), lambda m: token_loss(m(features, tokens[:, :-1]), tokens[:, 1:])),
    )


def segmentation(batch: int, device: torch.device, height: int = 128, width: int = 160, classes: int = 11) -> Pair:
    """camvid_unet.yaml's model (timm resnet18 + the skip decoder) against smp's Unet on resnet18."""
    import segmentation_models_pytorch as smp

    recipe = recipe_model("segmentation/camvid_unet.yaml")
    peer = smp.Unet("resnet18", encoder_weights=None, classes=classes)
    return _dense_contenders(recipe, peer, "smp_unet_resnet18", batch, device, height, width, classes)


def segnet(batch: int, device: torch.device, height: int = 128, width: int = 160, classes: int = 11) -> Pair:
    """camvid_segnet.yaml's SegNet (VGG16-BN, mirrored decoder) against smp's Unet on VGG16-BN."""
    import segmentation_models_pytorch as smp

    recipe = recipe_model("segmentation/camvid_segnet.yaml")
    peer = smp.Unet("vgg16_bn", encoder_weights=None, classes=classes)
    return _dense_contenders(recipe, peer, "smp_unet_vgg16_bn", batch, device, height, width, classes)


def _dense_contenders(
    recipe: dict, peer: nn.Module, peer_name: str, batch: int, device: torch.device, height: int, width: int,
    classes: int,
) -> Pair:
    encoder_args = {key: value for key, value in (recipe.get("encoder_args") or {}).items() if key != "pretrained_path"}
    ours = create_model(recipe["encoder"], recipe["decoder"], encoder_args, recipe.get("decoder_args"),
                        num_classes=classes)
    images = torch.randn(batch, 3, height, width).to(device)
    masks = torch.randint(0, classes, (batch, height, width)).to(device)
    loss = lambda m: F.cross_entropy(m(images).float(), masks)  # noqa: E731
    return Contender("suite", ours, loss), Contender(peer_name, peer, loss)


def translation(batch: int, device: torch.device) -> Pair:
    """multi30k_en_de.yaml's recurrent model against HF BART."""
    return _translation_contenders("translation/multi30k_en_de.yaml", batch, device)


def translation_transformer(batch: int, device: torch.device) -> Pair:
    """multi30k_en_de_transformer.yaml's Transformer encoder + decoder against HF BART of the same shape."""
    return _translation_contenders("translation/multi30k_en_de_transformer.yaml", batch, device)


def _translation_contenders(
    recipe_file: str, batch: int, device: torch.device, source: int = 24, target: int = 26, vocab: int = 8000
) -> Pair:
    from transformers import BartConfig, BartForConditionalGeneration

    recipe = recipe_model(recipe_file)
    sources, tokens = random_tokens(batch, source, vocab).to(device), random_tokens(batch, target, vocab).to(device)
    lengths = torch.full((batch,), source, device=device)
    ours = suite_text_model(recipe, vocab, source_vocab=vocab)
    dropout = recipe["decoder_args"]["dropout"]
    bart = BartConfig(vocab_size=vocab, d_model=512, encoder_layers=2, decoder_layers=1, encoder_attention_heads=8,
                      decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, dropout=dropout,
                      max_position_embeddings=64, pad_token_id=PAD_ID)
    peer = BartForConditionalGeneration(bart)
    return (
        Contender("suite", ours, lambda m: token_loss(m(sources, tokens[:, :-1], lengths), tokens[:, 1:])),
        Contender("hf_bart", peer,
                  lambda m: token_loss(m(input_ids=sources, decoder_input_ids=tokens[:, :-1]).logits, tokens[:, 1:])),
    )


TASKS = {
    "captioning": captioning, "asr": asr, "segmentation": segmentation, "segnet": segnet, "translation": translation,
    "translation_transformer": translation_transformer,
}
#: Each task's batch: its recipe's (ASR: espeak.yaml's 32; segmentation: camvid's 4 at 128x160).
BATCH = {
    "captioning": 32, "asr": 32, "segmentation": 4, "segnet": 4, "translation": 128, "translation_transformer": 128,
}


class Trainer:
    """One contender's training steps on ``device``: ``step()`` runs one, ``sample(n)`` -> mean seconds of n steps
    (after the device has finished them). ``bf16``: forward and loss under ``torch.autocast(bfloat16)``."""

    def __init__(self, contender: Contender, device: torch.device, bf16: bool = False, compiled: bool = False):
        self.model, self.device, self.bf16 = contender.model.to(device).train(), device, bf16
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.loss = torch.compile(contender.loss) if compiled else contender.loss

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss(self.model)
        loss.backward()
        self.optimizer.step()

    def sample(self, steps: int) -> float:
        self.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        self.synchronize()
        return (time.perf_counter() - start) / steps

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def run_task(name: str, args: argparse.Namespace) -> dict:
    """Builds the pair, warms every setting up, then samples them alternately."""
    torch.manual_seed(0)
    device, bf16 = torch.device(args.device), args.precision == "bf16-mixed"
    suite, peer = TASKS[name](BATCH[name] * args.batch_scale, device)
    trainers = {"suite": Trainer(suite, device, bf16), peer.name: Trainer(peer, device, bf16)}
    timings: dict[str, float] = {}
    if args.compile:
        compiled = Trainer(Contender("suite", copy.deepcopy(suite.model), suite.loss), device, bf16, compiled=True)
        start = time.perf_counter()
        try:
            compiled.step()  # compiles the forward and backward graphs
            compiled.synchronize()
            trainers["suite_compiled"] = compiled
            timings["compile_seconds"] = time.perf_counter() - start
        except Exception as error:  # noqa: BLE001 - reported in the JSON, the eager settings still run
            timings["compile_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    for trainer in trainers.values():
        trainer.step()
    samples: dict[str, list[float]] = {key: [] for key in trainers}
    for _ in range(args.repeats):
        for key, trainer in trainers.items():
            samples[key].append(trainer.sample(args.steps))
    medians = {key: statistics.median(values) for key, values in samples.items()}
    result = {
        "batch": BATCH[name] * args.batch_scale,
        "seconds_per_step": medians,
        "samples": samples,
        "parameters": {"suite": count(suite.model), peer.name: count(peer.model)},
        "ratio_peer_over_suite": medians[peer.name] / medians["suite"],
        **timings,
    }
    if "suite_compiled" in medians:
        result["compile_gain"] = medians["suite"] / medians["suite_compiled"]
    if args.profile:
        print_profile(name, trainers["suite"], args.steps)
    return result


def print_profile(name: str, trainer: Trainer, steps: int, rows: int = 15) -> None:
    """The operators with the most self time over ``steps`` of the suite's steps (device time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        trainer.sample(steps)
    key = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    print(f"{name}: the suite's step, {steps} steps profiled")
    print(profiler.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=50))


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps in one timed sample")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile setting")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("32", "bf16-mixed"), default="32")
    parser.add_argument("--batch-scale", type=int, default=1, help="multiplies every task's batch")
    parser.add_argument("--profile", action="store_true", help="print where the suite's step spends its time")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "training_step.json")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    threads = configure_threads()
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({platform.machine()}, {threads} threads)"
    report = {"device": device, "torch": torch.__version__, "precision": args.precision, "repeats": args.repeats,
              "steps_per_sample": args.steps, "tasks": {}}
    for name in args.tasks:
        report["tasks"][name] = run_task(name, args)
        summary = {k: v for k, v in report["tasks"][name].items() if k != "samples"}
        print(name, json.dumps(summary), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # after each task: a cut-off run keeps the rest
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
