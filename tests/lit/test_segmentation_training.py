"""SegmentationModule: a short run lowers the loss; checkpoints carry what inference needs."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from multimodal_s2s.checkpoint import CheckpointError, Task, read_checkpoint
from multimodal_s2s.data.segmentation import SegmentationDataModule
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint

TINY_MODEL = {"encoder": "segnet_basic", "encoder_args": {"channels": 8, "kernel_size": 3, "num_stages": 2}}
TRAIN_STEPS = 30


def _data(**overrides) -> SegmentationDataModule:
    options = {"image_size": (32, 32), "batch_size": 8, "augment": False, "shapes_train_size": 64, "shapes_val_size": 8}
    return SegmentationDataModule(**{**options, **overrides})


def _trainer(tmp_path, **overrides) -> L.Trainer:
    options = {"max_steps": TRAIN_STEPS, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
               "default_root_dir": tmp_path, "accelerator": "cpu", "devices": 1, "num_sanity_val_steps": 0}
    return L.Trainer(**{**options, **overrides})


class LossHistory(L.Callback):
    """Records the training loss of every step."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SegNet-Basic trained for TRAIN_STEPS steps, its checkpoint, its loss history and a batch."""
    tmp_path = tmp_path_factory.mktemp("fit")
    torch.manual_seed(0)
    data = _data()
    module = SegmentationModule(**TINY_MODEL, lr=0.01, warmup_steps=5)
    history = LossHistory()
    trainer = _trainer(tmp_path, check_val_every_n_epoch=100, callbacks=[history])
    trainer.fit(module, datamodule=data)
    path = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(path)
    module.eval()
    return module, path, history.losses, next(iter(data.val_dataloader()))


def test_a_short_run_lowers_the_loss(trained):
    _, _, losses, _ = trained
    assert len(losses) == TRAIN_STEPS
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first


def test_checkpoint_rebuilds_the_model_with_classes_and_preprocessing(trained):
    module, path, _, batch = trained
    checkpoint = read_checkpoint(path, Task.SEGMENTATION)
    header = checkpoint.header
    assert header.labels.class_names[0] == "background" and len(header.labels.palette) == 5
    assert header.preprocessing.image_size == (32, 32) and len(header.preprocessing.mean) == 3
    model = model_from_checkpoint(checkpoint)
    with torch.no_grad():
        assert torch.allclose(model(batch["images"]), module(batch["images"]), atol=1e-5)
    reloaded = SegmentationModule.load_from_checkpoint(path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(batch["images"]), module(batch["images"]), atol=1e-5)
    with pytest.raises(CheckpointError, match=r"tiny\.ckpt: the checkpoint's task is segmentation, but this needs asr"):
        read_checkpoint(path, Task.ASR)


def test_validation_and_test_log_the_metrics_and_the_class_table(trained, tmp_path, caplog):
    module, path, *_ = trained
    data = _data(test_split="test")
    trainer = _trainer(tmp_path)
    results = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert {"val/loss", "val/global_acc", "val/class_avg_acc", "val/miou"} <= set(results)
    assert 0.0 <= results["val/miou"] <= 1.0
    test_results = trainer.test(module, datamodule=data, verbose=False)[0]
    assert "test/iou/background" in test_results and "test/miou" in test_results
    table = next(record.message for record in caplog.records if record.message.startswith("class"))
    assert all(name in table for name in module.header.labels.class_names) and "miou" in table


def test_median_frequency_balancing_weights_rare_classes_up(tmp_path):
    data = _data(shapes_train_size=16)
    module = SegmentationModule(**TINY_MODEL, class_balancing="median_frequency")
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(module, datamodule=data)
    weights = module.class_weights.tolist()
    assert weights[0] < 1.0 < max(weights[1:])  # background is the most frequent class
    assert module.header.labels.class_weights == pytest.approx(weights)


def test_unknown_class_balancing_is_refused():
    with pytest.raises(ValueError, match="unknown class_balancing 'inverse'"):
        SegmentationModule(encoder="segnet_basic", class_balancing="inverse")
