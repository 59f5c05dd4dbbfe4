"""bf16 mixed precision (``trainer.precision: bf16-mixed``, torch.autocast in bfloat16): the models run in
bfloat16, while the audio front end (STFT, log-mel) and every loss stay in float32."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from asr_fixtures import tiny_asr_run
from recipe_fixtures import write_recipe

from multimodal_s2s.apps.training import suite_cli
from multimodal_s2s.data.segmentation import SegmentationDataModule
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.preprocessing.audio import AudioFeatures

BF16_STEPS = 2


class DtypeRecorder(L.Callback):
    """Records the dtype of the outputs of some of the module's parts and of each step's loss."""

    def __init__(self, parts: dict[str, str]):
        self.parts, self.dtypes = parts, {"loss": set()}  # name -> dotted attribute path of the module

    def on_fit_start(self, trainer, module) -> None:
        for name, path in self.parts.items():
            self.dtypes[name] = set()
            part = module.get_submodule(path)
            part.register_forward_hook(lambda _m, _args, output, name=name: self.dtypes[name].add(first(output).dtype))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        assert torch.isfinite(outputs["loss"])
        self.dtypes["loss"].add(outputs["loss"].dtype)


def first(output) -> torch.Tensor:
    """The tensor an output starts with: a tensor, a tuple's or list's first item, a SequenceOutput's memory."""
    if isinstance(output, tuple | list):
        return output[0]
    return getattr(output, "memory", output)


def test_audio_features_stay_float32_under_autocast():
    front_end = AudioFeatures(spec_augment={"num_freq_masks": 0, "num_time_masks": 0})
    waveforms, lengths = torch.randn(2, 8000), torch.tensor([8000, 6000])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = front_end(waveforms, lengths)
    assert features.dtype == torch.float32
    assert torch.equal(features, front_end(waveforms, lengths)[0])  # the same as without autocast


def test_asr_bf16_keeps_front_end_and_hybrid_loss_in_float32(tmp_path):
    recorder = DtypeRecorder({"front_end": "audio_features", "decoder": "model.decoder", "ctc": "ctc_head"})
    tiny_asr_run(tmp_path, BF16_STEPS, precision="bf16-mixed", callbacks=[recorder])
    assert recorder.dtypes == {
        "loss": {torch.float32},
        "front_end": {torch.float32},
        "decoder": {torch.bfloat16},  # autocast was on
        "ctc": {torch.float32},
    }


def test_segmentation_bf16_keeps_the_loss_in_float32(tmp_path):
    recorder = DtypeRecorder({"logits": "model"})
    data = SegmentationDataModule(image_size=(32, 32), batch_size=4, augment=False, shapes_train_size=8,
                                  shapes_val_size=4)
    module = SegmentationModule("segnet_basic", encoder_args={"channels": 8, "kernel_size": 3, "num_stages": 2})
    trainer = L.Trainer(max_steps=BF16_STEPS, precision="bf16-mixed", accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path, callbacks=[recorder])
    trainer.fit(module, datamodule=data)
    assert recorder.dtypes == {"loss": {torch.float32}, "logits": {torch.bfloat16}}


@pytest.mark.parametrize(
    ("task", "parts"),
    [
        ("captioning", {"encoder": "model.encoder.backbone", "decoder": "model.decoder"}),
        ("translation", {"attention": "model.decoder.attention"}),  # LSTMs: float32 under CPU autocast
    ],
)
def test_recipe_fits_and_validates_in_bf16_from_the_command_line(task, parts, tmp_path):
    """``mms2s fit --trainer.precision bf16-mixed`` on the task's tiny recipe: the model's parts run in
    bfloat16, the loss in float32, and validation scores come out finite (the LSTMs of the translation
    recipe failed inside oneDNN before ``layers.recurrent.run_recurrent``)."""
    recipe = write_recipe(task, tmp_path)
    recorder = {"class_path": f"{__name__}.DtypeRecorder", "init_args": {"parts": parts}}
    cli = suite_cli(["fit", "--config", str(recipe), "--trainer.precision", "bf16-mixed",
                     f"--trainer.callbacks+={json.dumps(recorder)}"])
    (recorded,) = [callback for callback in cli.trainer.callbacks if isinstance(callback, DtypeRecorder)]
    assert recorded.dtypes["loss"] == {torch.float32}
    assert all(recorded.dtypes[name] == {torch.bfloat16} for name in parts), recorded.dtypes
    assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])
    assert cli.trainer.callback_metrics["val/loss"].dtype == torch.float32
