"""The suite on a CUDA device (marker ``gpu``; skipped without one, so CI never runs it): every task's tiny
recipe trains with bf16-mixed on the GPU and validates there with the figures the CPU gives on the same
checkpoint; prediction runs there; the pipelines give the CPU's answers on the GPU; the decoder's KV cache
gives teacher forcing's logits on the GPU's attention kernels, over a long padded memory.

    .venv/bin/python -m pytest -m gpu tests/lit/test_gpu.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recipe_fixtures import EVALUATION_SIZE, MONITOR, TASKS, write_recipe

from multimodal_s2s.apps.training import suite_cli
from multimodal_s2s.decoders.text_transformer import TransformerDecoder
from multimodal_s2s.layers.recurrent import RecurrentSteps
from multimodal_s2s.lit.runs import latest_last_checkpoint
from multimodal_s2s.pipelines import load_pipeline
from multimodal_s2s.types import Emits, EncoderInfo, Modality, SequenceOutput

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

ON_GPU = ["--trainer.accelerator", "gpu", "--trainer.devices", "1"]
ON_CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
#: GPU against CPU in float32: TF32 stays off (torch's default), so only kernel order differs.
LOSS_RTOL, METRIC_ATOL = 1e-3, 1e-6


def _validate(recipe: Path, checkpoint: Path, device_args: list[str]) -> dict[str, float]:
    cli = suite_cli(["validate", "--config", str(recipe), "--ckpt_path", str(checkpoint), *device_args,
                     "--trainer.precision", "32-true"])
    return {key: float(value) for key, value in cli.trainer.callback_metrics.items() if key.startswith("val/")}


@pytest.mark.parametrize("task", TASKS)
def test_bf16_training_on_the_gpu_then_validation_equals_the_cpus(task, tmp_path):
    recipe = write_recipe(task, tmp_path, max_epochs=2)
    fitted = suite_cli(["fit", "--config", str(recipe), *ON_GPU, "--trainer.precision", "bf16-mixed"])
    assert fitted.trainer.strategy.root_device.type == "cuda"
    assert torch.isfinite(fitted.trainer.callback_metrics["train/loss"])
    checkpoint = latest_last_checkpoint(tmp_path / "runs" / task)
    weights = torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]
    assert all(w.dtype != torch.bfloat16 for w in weights.values())  # bf16-mixed keeps float32 weights

    on_gpu, on_cpu = _validate(recipe, checkpoint, ON_GPU), _validate(recipe, checkpoint, ON_CPU)
    assert on_gpu.keys() == on_cpu.keys() and MONITOR[task] in on_gpu
    assert on_gpu["val/loss"] == pytest.approx(on_cpu["val/loss"], rel=LOSS_RTOL)
    for key in on_cpu.keys() - {"val/loss"}:
        assert on_gpu[key] == pytest.approx(on_cpu[key], abs=max(METRIC_ATOL, 0.02 * abs(on_cpu[key]))), key

    suite_cli(["predict", "--config", str(recipe), "--ckpt_path", str(checkpoint), *ON_GPU])
    (predictions,) = (tmp_path / "runs" / task).glob("version_*/predictions.jsonl")
    assert len(predictions.read_text().splitlines()) == EVALUATION_SIZE[task]


def _pipeline_inputs(task: str, folder: Path) -> list:
    if task == "translation":
        return ["march 3, 1999", "12/01/2020", "the 5th of june 1987", "1 jan 2001"]
    if task == "asr":
        manifest = next((folder / "tones").glob("val*.jsonl"))
        return [str(manifest.parent / json.loads(line)["audio_filepath"]) for line in manifest.read_text().splitlines()]
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(3, 32, 32, generator=generator) for _ in range(4)]


@pytest.mark.parametrize("task", TASKS)
def test_pipelines_answer_on_the_gpu_as_on_the_cpu(task, tmp_path):
    recipe = write_recipe(task, tmp_path)
    suite_cli(["fit", "--config", str(recipe), *ON_CPU])
    checkpoint = latest_last_checkpoint(tmp_path / "runs" / task)
    inputs = _pipeline_inputs(task, tmp_path)
    on_cpu, on_gpu = (load_pipeline(checkpoint, device=device)(inputs) for device in ("cpu", "cuda"))
    if task == "segmentation":
        for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
            assert (torch.as_tensor(cpu.labels) == torch.as_tensor(gpu.labels)).float().mean() > 0.999
    else:
        assert [r.text for r in on_gpu] == [r.text for r in on_cpu]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cached_decoding_equals_teacher_forcing_over_a_long_padded_memory(dtype):
    """Memory of 1500 rows (whisper's 30 s), half of one example padded; every cached step's logits equal
    teacher forcing's, in float32 and under bf16 autocast (then within bf16's resolution, same argmax)."""
    torch.manual_seed(0)
    batch, length, tokens_len, vocab, width = 3, 1500, 24, 51, 64
    info = EncoderInfo(modality=Modality.AUDIO, emits=frozenset({Emits.SEQUENCE}), out_dim=width)
    decoder = TransformerDecoder(info, vocab, d_model=width, num_layers=2, num_heads=4, ff_dim=128).cuda().eval()
    memory = torch.randn(batch, length, width, device="cuda")
    mask = torch.arange(length, device="cuda") < torch.tensor([length, length // 2, 7], device="cuda")[:, None]
    encoded, tokens = SequenceOutput(memory, mask), torch.randint(4, vocab, (batch, tokens_len), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        full = decoder(tokens, encoded).float()
        cache, stepped = None, []
        for t in range(tokens_len):
            out = decoder.step(tokens[:, t : t + 1], encoded, cache)
            cache, stepped = out.cache, [*stepped, out.logits.float()]
    stepped = torch.cat(stepped, dim=1)
    atol = 1e-4 if dtype == torch.float32 else 0.1
    torch.testing.assert_close(stepped, full, atol=atol, rtol=0)
    assert (stepped.argmax(-1) == full.argmax(-1)).float().mean() > 0.95


@pytest.mark.parametrize("cell", [torch.nn.LSTM, torch.nn.GRU])
def test_unrolled_recurrent_steps_equal_cudnn(cell):
    """RecurrentSteps (the attention decoder's loop) against cuDNN's kernel for the whole sequence."""
    torch.manual_seed(0)
    rnn = cell(24, 32, 2, batch_first=True).cuda().eval()
    known, fed = torch.randn(4, 9, 16, device="cuda"), torch.randn(4, 9, 8, device="cuda")
    hidden = torch.randn(2, 4, 32, device="cuda")
    state = (hidden, torch.randn_like(hidden)) if cell is torch.nn.LSTM else hidden
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # both in full float32
        expected, _ = rnn(torch.cat([known, fed], dim=-1), state)
        run_step, outputs = RecurrentSteps(rnn, known), []
        for t in range(known.shape[1]):
            output, state = run_step(t, fed[:, t], state)
            outputs.append(output)
    torch.testing.assert_close(torch.stack(outputs, dim=1), expected, atol=1e-5, rtol=1e-4)
