"""``freeze_encoder_epochs`` and ``encoder_lr_scale`` take effect, and the recipes that start from ImageNet
weights build and train a few steps from hand-built caches of their weights, offline (``pretrained_fixtures``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy
from PIL import Image
from pretrained_fixtures import offline_env, run_offline, write_timm_cache
from recipe_fixtures import write_camvid
from torchvision.transforms import v2

from multimodal_s2s.checkpoint import read_checkpoint
from multimodal_s2s.data.segmentation import SegmentationDataModule
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.lit.transfer import check_strategy
from multimodal_s2s.models.from_checkpoint import model_from_checkpoint

TASKS = Path(__file__).resolve().parents[2] / "tasks"
LR, SCALE = 0.01, 0.25
CLI = "import sys\nfrom multimodal_s2s.apps.cli import main\nsys.exit(main(sys.argv[1:]))"


class EncoderWatch(L.Callback):
    """Per training epoch: whether any encoder gradient existed before an optimizer step, whether the
    encoder was in training mode, and its first BatchNorm's running mean at the start and each epoch's end."""

    def __init__(self) -> None:
        self.grads: dict[int, bool] = {}
        self.training: dict[int, bool] = {}
        self.running_means: list[torch.Tensor] = []

    def on_train_start(self, trainer, module) -> None:
        self.running_means.append(first_norm(module.model.encoder).running_mean.clone())

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        encoder = module.model.encoder
        epoch = trainer.current_epoch
        self.grads[epoch] = self.grads.get(epoch, False) or any(p.grad is not None for p in encoder.parameters())
        self.training[epoch] = encoder.training and all(m.training for m in encoder.modules())

    def on_train_epoch_end(self, trainer, module) -> None:
        self.running_means.append(first_norm(module.model.encoder).running_mean.clone())


def first_norm(encoder: torch.nn.Module) -> torch.nn.BatchNorm2d:
    return next(m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny segmenter (timm test_resnet + unet) fitted 2 epochs, its encoder frozen in the first, from random
    weights given as timm's local file (``pretrained_cfg_overlay``): test_resnet's weights expect mean 0.5."""
    weights = tmp_path_factory.mktemp("weights") / "test_resnet.safetensors"
    safetensors.torch.save_file(timm.create_model("test_resnet").state_dict(), str(weights))
    encoder_args = {"backbone": "test_resnet", "pretrained": True, "pretrained_cfg_overlay": {"file": str(weights)}}
    module = SegmentationModule("cnn", "unet", encoder_args, {"min_channels": 8, "max_channels": 16}, lr=LR,
                                warmup_steps=1, freeze_encoder_epochs=1, encoder_lr_scale=SCALE)
    data = SegmentationDataModule(image_size=(32, 32), augment=False, batch_size=8, num_workers=0,
                                  shapes_train_size=16, shapes_val_size=8)
    watch = EncoderWatch()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[watch])
    trainer.fit(module, datamodule=data)
    return module, trainer, watch, data


def test_a_frozen_encoder_gets_no_gradients_and_keeps_its_statistics_then_trains(fitted):
    module, _, watch, _ = fitted
    assert watch.grads == {0: False, 1: True}
    assert watch.training == {0: False, 1: True}
    initial, after_frozen, after_trained = watch.running_means
    assert torch.equal(after_frozen, initial)  # eval mode: BatchNorm statistics untouched
    assert not torch.equal(after_trained, initial)
    assert all(p.requires_grad for p in module.model.encoder.parameters())


def test_the_encoder_learns_at_a_scaled_learning_rate(fitted):
    module, trainer, _, _ = fitted
    encoder = {id(p) for p in module.model.encoder.parameters()}
    groups = trainer.optimizers[0].param_groups
    rates = {(id(group["params"][0]) in encoder, group["initial_lr"]) for group in groups if group["params"]}
    assert rates == {(False, LR), (True, LR * SCALE)}
    assert sum(len(g["params"]) for g in groups if g["initial_lr"] == LR * SCALE) == len(encoder)


def test_the_weights_normalisation_reaches_the_header_and_the_training_data(fitted):
    module, _, _, data = fitted
    assert module.header.preprocessing.mean == (0.5, 0.5, 0.5) == module.header.preprocessing.std
    assert module.header.preprocessing.weights.endswith("test_resnet.safetensors")
    assert data.preprocessing == module.header.preprocessing
    (normalize,) = [step for step in data.dataset("train").transform.transforms if isinstance(step, v2.Normalize)]
    assert normalize.mean == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"freeze_encoder_epochs": -1}, "model.freeze_encoder_epochs must be an integer >= 0, got -1"),
        ({"freeze_encoder_epochs": 1.5}, "model.freeze_encoder_epochs must be an integer >= 0, got 1.5"),
        ({"encoder_lr_scale": 0}, "model.encoder_lr_scale must be a finite number > 0, got 0"),
        ({"encoder_lr_scale": float("nan")}, "model.encoder_lr_scale must be a finite number > 0, got nan"),
        ({"encoder_lr_scale": "low"}, "model.encoder_lr_scale must be a finite number > 0, got 'low'"),
    ],
)
def test_bad_transfer_options_are_one_line(options, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqModule("cnn_tiny", "transformer_tiny", **options)
    with pytest.raises(ValueError, match=message):
        SegmentationModule("cnn_tiny", "unet", **options)


def test_freezing_under_ddp_needs_find_unused_parameters():
    with pytest.raises(ValueError, match="trainer.strategy: ddp_find_unused_parameters_true"):
        check_strategy(DDPStrategy())
    check_strategy(DDPStrategy(find_unused_parameters=True))


def write_flickr8k(root: Path, images: int = 6) -> None:
    """A Flickr8k-shaped folder: ``images`` random photos with 2 captions each, 4 for training."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{k}.jpg" for k in range(images)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "images" / name)
    captions = ["a dog runs on the grass .", "a man rides a bike on the road ."]
    lines = [f"{name}#{k}\t{caption}" for name in names for k, caption in enumerate(captions)]
    (root / "Flickr8k.token.txt").write_text("\n".join(lines))
    (root / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:4]))
    (root / "Flickr_8k.devImages.txt").write_text("\n".join(names[4:]))


RECIPES = {
    "flickr8k_pretrained": (TASKS / "captioning" / "flickr8k_pretrained.yaml", write_flickr8k),
    "camvid_unet_pretrained": (TASKS / "segmentation" / "camvid_unet_pretrained.yaml", write_camvid),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_pretrained_recipe_trains_from_cached_weights_offline(name, tmp_path):
    """The recipe as shipped, on a tiny fake copy of its data at 64x64: 2 epochs of 2 steps (the encoder frozen
    in the first), offline with every socket failing, its weights from a hand-built Hugging Face cache."""
    recipe, write_data = RECIPES[name]
    init = yaml.safe_load(recipe.read_text())["model"]["init_args"]
    backbone, tag = init["encoder_args"]["backbone"], init["encoder_args"]["pretrained"]
    write_timm_cache(tmp_path / "hf", f"{backbone}.{tag}")
    write_data(tmp_path / "data")
    overrides = ["--data.init_args.root", str(tmp_path / "data"), "--data.init_args.image_size", "[64, 64]",
                 "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0",
                 "--model.init_args.freeze_encoder_epochs", "1", "--model.init_args.warmup_steps", "1",
                 "--model.init_args.max_length" if "flickr" in name else "--trainer.log_every_n_steps",
                 "4" if "flickr" in name else "1",
                 "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                 "--trainer.check_val_every_n_epoch", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                 "--trainer.precision", "32-true", "--trainer.default_root_dir", str(tmp_path / "runs")]
    env = offline_env(tmp_path / "hf", tmp_path / "torch")
    done = run_offline(CLI, env, "fit", "--config", str(recipe), *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    (last,) = (tmp_path / "runs").glob("version_*/checkpoints/last.ckpt")
    checkpoint = read_checkpoint(last)
    preprocessing = checkpoint.header.preprocessing
    assert preprocessing.weights == f"timm/{backbone}.{tag}" and preprocessing.weights_input_size == (224, 224)
    assert preprocessing.image_size == (64, 64) and checkpoint.header.model.encoder_args["pretrained"] == tag
    model_from_checkpoint(checkpoint)  # rebuilt from the checkpoint alone: nothing is read from the cache
