"""SegmentationModule: a short run lowers the loss; checkpoints carry what inference needs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from recipe_fixtures import write_camvid

from multimodal_s2s.apps.training import suite_cli
from multimodal_s2s.checkpoint import CheckpointError, Task, read_checkpoint
from multimodal_s2s.data.segmentation import SegmentationDataModule, load_mask
from multimodal_s2s.lit.segmentation import SegmentationModule, at_mask_sizes
from multimodal_s2s.metrics.segmentation import SegmentationMetrics
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint
from multimodal_s2s.preprocessing.images import load_image
from multimodal_s2s.preprocessing.segmentation_transforms import apply_transform, segmentation_transform

CAMVID_CPU = Path(__file__).resolve().parents[2] / "tasks" / "segmentation" / "camvid_unet_cpu.yaml"
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


def test_native_size_scoring_scores_each_example_at_its_own_size():
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([[16, 12], [10, 20]])
    resized = at_mask_sizes(logits, sizes, (16, 20))
    assert resized.shape == (2, 3, 16, 20)
    masks = torch.full((2, 16, 20), 255)
    per_example = SegmentationMetrics(3, ignore_index=255)
    for index, (height, width) in enumerate(sizes.tolist()):
        own = torch.nn.functional.interpolate(logits[index : index + 1], size=(height, width), mode="bilinear")
        assert torch.equal(resized[index : index + 1, :, :height, :width], own)
        masks[index, :height, :width] = torch.randint(0, 3, (height, width))
        per_example.update(own, masks[index : index + 1, :height, :width])
    batched = SegmentationMetrics(3, ignore_index=255)
    batched.update(resized, masks)  # the padding is the ignore index: it counts nowhere
    assert torch.equal(batched.confusion, per_example.confusion)


def test_the_cpu_camvid_recipe_scores_at_the_masks_own_size(tmp_path):
    """The recipe as shipped on a tiny CamVid-shaped copy (masks 48x64, the model seeing 24x32): the val mIoU
    that ``mms2s validate`` reports is that of the logits resized to the masks' own size."""
    write_camvid(tmp_path / "data")
    common = ["--config", str(CAMVID_CPU), "--data.init_args.root", str(tmp_path / "data"),
              "--data.init_args.image_size", "[24, 32]", "--data.init_args.batch_size", "2",
              "--data.init_args.num_workers", "0", "--trainer.default_root_dir", str(tmp_path / "runs"),
              "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false"]
    suite_cli(["fit", *common, "--trainer.max_steps", "2", "--model.init_args.warmup_steps", "1",
               "--trainer.check_val_every_n_epoch", "1"])
    (last,) = (tmp_path / "runs").glob("version_*/checkpoints/last.ckpt")
    reported = float(suite_cli(["validate", *common, "--ckpt_path", str(last)]).trainer.callback_metrics["val/miou"])
    checkpoint = read_checkpoint(last)
    model, prep = model_from_checkpoint(checkpoint).eval(), checkpoint.header.preprocessing
    transform = segmentation_transform(prep.image_size, train=False, ignore_index=11, mean=prep.mean, std=prep.std)
    metrics = SegmentationMetrics(11, ignore_index=11)
    for line in (tmp_path / "data" / "val.txt").read_text().splitlines():
        image_file, mask_file = (tmp_path / "data" / name for name in line.split())
        mask = load_mask(mask_file)
        image, _ = apply_transform(transform, load_image(image_file, max_side=None), mask)
        with torch.no_grad():
            logits = torch.nn.functional.interpolate(model(image[None]), size=mask.shape, mode="bilinear")
        metrics.update(logits, torch.from_numpy(mask.astype("int64"))[None])
    assert mask.shape == (48, 64) and reported == pytest.approx(float(metrics.compute()["miou"]), abs=1e-6)
