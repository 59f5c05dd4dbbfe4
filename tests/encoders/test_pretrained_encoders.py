"""``encoder_args.pretrained``: timm weights through the huggingface_hub cache and torchvision's VGG16-BN through
``$TORCH_HOME/hub/checkpoints``, read offline with every socket failing, from hand-built caches of random-init
models of the real classes (``pretrained_fixtures``); and a one-line error when the cache lacks them."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import safetensors.torch
import timm
import torch
import yaml
from pretrained_fixtures import (
    json_lines,
    offline_env,
    run_offline,
    vgg16_bn_cache_file,
    write_timm_cache,
    write_vgg16_bn_cache,
)
from recipe_fixtures import write_recipe

from multimodal_s2s.checkpoint import ImagePreprocessing
from multimodal_s2s.encoders import pretrained as by_name
from multimodal_s2s.encoders.weights import WeightsError
from multimodal_s2s.lit.transfer import with_weights_preprocessing
from multimodal_s2s.models import ModelConfig, create_model
from multimodal_s2s.registry import encoder_entry

#: Build each encoder of argv[1] (a JSON list of [name, args, weights file]) and report whether every
#: parameter and buffer equals the file's (torchvision VGG by order: its convs and norms are numbered apart).
COMPARE_WEIGHTS = """
import json, sys
import safetensors.torch, torch
from torch import nn
import multimodal_s2s.models  # registers the built-in encoders
from multimodal_s2s.registry import encoder_entry
for name, args, path in json.loads(sys.argv[1]):
    encoder = encoder_entry(name).factory(**args)
    if path.endswith(".safetensors"):
        file = safetensors.torch.load_file(path)
        own = (encoder.vit if hasattr(encoder, "vit") else encoder.backbone).state_dict()
        pairs = [(own[key], file.get(key)) for key in own]
    else:
        file = torch.load(path, weights_only=True)
        convs = [m.weight for m in encoder.modules() if isinstance(m, nn.Conv2d)]
        pairs = list(zip(convs, [v for k, v in file.items() if k.endswith("weight") and v.dim() == 4]))
    equal = sum(theirs is not None and torch.equal(mine, theirs) for mine, theirs in pairs)
    weights = vars(encoder.pretrained_weights)
    print(json.dumps({"name": name, "equal": equal, "entries": len(pairs), "weights": weights}))
"""
#: The timm encoders tested, with the weights ``pretrained: true`` (or the tag) names.
TIMM_CASES = [
    ("cnn", {"backbone": "test_resnet", "pretrained": True}, "test_resnet.r160_in1k"),
    ("cnn_tiny", {"pretrained": "c3_in1k", "out_indices": [1, 2]}, "resnet10t.c3_in1k"),
    ("vit_tiny", {"pretrained": True}, "vit_tiny_patch16_224.augreg_in21k_ft_in1k"),
]
CLI = "import sys\nfrom multimodal_s2s.apps.cli import main\nsys.exit(main(sys.argv[1:]))"
#: timm weights a user may have cached, checked in turn by the test on real weights.
REAL_TIMM_WEIGHTS = {"resnet18.tv_in1k": "cnn_small", "resnet50.tv_in1k": "cnn_base", "resnet18.a1_in1k": "cnn_small",
                     "resnet50.a1_in1k": "cnn_base", "resnet10t.c3_in1k": "cnn_tiny"}


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(HF_HOME, TORCH_HOME, weights name -> file) with the timm cases' weights and VGG16-BN's."""
    root = tmp_path_factory.mktemp("caches")
    files = {weights: str(write_timm_cache(root / "hf", weights)) for _, _, weights in TIMM_CASES}
    files["vgg16_bn"] = str(write_vgg16_bn_cache(root / "torch"))
    return root / "hf", root / "torch", files


def test_pretrained_loads_the_cached_weights_offline_without_a_network(caches):
    hf_home, torch_home, files = caches
    cases = [[name, args, files[weights]] for name, args, weights in TIMM_CASES]
    cases.append(["segnet_vgg16", {"pretrained": True}, files["vgg16_bn"]])
    done = run_offline(COMPARE_WEIGHTS, offline_env(hf_home, torch_home), json.dumps(cases))
    assert done.returncode == 0, done.stderr[-3000:]
    reports = json_lines(done.stdout)
    assert [report["name"] for report in reports] == [case[0] for case in cases]
    for report in reports:
        assert report["entries"] > 0 and report["equal"] == report["entries"], report
    weights = [report["weights"] for report in reports]
    assert [w["name"] for w in weights] == ["timm/test_resnet.r160_in1k", "timm/resnet10t.c3_in1k",
                                            "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",
                                            "torchvision/VGG16_BN_Weights.IMAGENET1K_V1"]
    assert weights[0]["mean"] == [0.5, 0.5, 0.5] and weights[0]["input_size"] == [160, 160]
    assert weights[3]["mean"] == [0.485, 0.456, 0.406] and weights[3]["input_size"] == [224, 224]


def test_weights_missing_from_the_cache_fail_in_one_line(tmp_path):
    recipe = write_recipe("captioning", tmp_path)
    config = yaml.safe_load(recipe.read_text())
    config["model"]["init_args"]["encoder_args"]["pretrained"] = True
    recipe.write_text(yaml.safe_dump(config))
    done = run_offline(CLI, offline_env(tmp_path / "hf", tmp_path / "torch"), "fit", "--config", str(recipe))
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("mms2s fit:")]
    assert "Traceback" not in done.stderr
    assert "'timm/test_resnet.r160_in1k' are not in the Hugging Face cache" in line
    assert "HF_HUB_OFFLINE=1" in line and "pretrained_path: FILE" in line and "HF_HOME" in line


def test_vgg16_bn_missing_offline_names_the_file_it_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    expected = vgg16_bn_cache_file(tmp_path)
    with pytest.raises(WeightsError, match=f"not at {expected} .*HF_HUB_OFFLINE=1.*pretrained_path: FILE.*TORCH_HOME"):
        create_model("segnet_vgg16", "segnet", {"pretrained": True}, num_classes=3)


def test_a_truncated_cached_vgg16_bn_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = vgg16_bn_cache_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightsError, match="VGG16_BN_Weights.IMAGENET1K_V1: cannot read"):
        create_model("segnet_vgg16", "segnet", {"pretrained": True}, num_classes=3)


@pytest.mark.parametrize(
    ("encoder", "args", "message"),
    [
        ("cnn_tiny", {"pretrained": 3}, "encoder_args.pretrained must be true, false or a weights tag"),
        ("cnn_tiny", {"pretrained": " "}, "encoder_args.pretrained must be true, false or a weights tag"),
        ("vit_tiny", {"pretrained": True, "pretrained_path": "w.pt"}, "give pretrained or pretrained_path, not both"),
        ("cnn", {"backbone": "resnet18", "pretrained": "no_such"}, "'resnet18.no_such': Invalid pretrained tag"),
        ("vit_tiny", {"pretrained": True, "depth": 2}, r"no timm weights for a ViT of .* \(16, 192, 2, 3\)"),
        ("segnet_vgg16", {"pretrained": "IMAGENET2"}, "must be true or one of \\['IMAGENET1K_V1'\\]"),
    ],
)
def test_bad_pretrained_values_are_one_line(encoder, args, message):
    with pytest.raises(WeightsError, match=message):
        encoder_entry(encoder).factory(**args)


def test_timm_local_files_keep_working(tmp_path):
    """timm's own ways to give a local file: ``pretrained_cfg_overlay={"file": ...}`` and a ``local-dir:`` folder."""
    source = timm.create_model("test_resnet", pretrained=False)
    folder = tmp_path / "local"
    folder.mkdir()
    safetensors.torch.save_file(source.state_dict(), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": "test_resnet", "num_classes": 1000,
                                                    "pretrained_cfg": {"mean": [0.1, 0.2, 0.3]}}))
    overlay = {"file": str(folder / "model.safetensors")}
    by_file = encoder_entry("cnn").factory(backbone="test_resnet", pretrained=True, pretrained_cfg_overlay=overlay)
    by_folder = encoder_entry("cnn").factory(backbone=f"local-dir:{folder}", pretrained=True)
    for encoder in (by_file, by_folder):
        for key, value in encoder.backbone.state_dict().items():
            assert torch.equal(value, source.state_dict()[key]), key
    assert by_file.pretrained_weights.name == overlay["file"]
    assert by_folder.pretrained_weights.mean == (0.1, 0.2, 0.3)
    with pytest.raises(WeightsError, match="'local-dir:/no/such/folder'"):
        encoder_entry("cnn").factory(backbone="local-dir:/no/such/folder", pretrained=True)


def test_the_weights_normalisation_replaces_the_data_options():
    data = ImagePreprocessing((64, 64), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    weights = by_name.PretrainedWeights("timm/x.y", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (160, 160))
    assert with_weights_preprocessing(data, weights) == ImagePreprocessing(
        (64, 64), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "timm/x.y", (160, 160)
    )
    assert with_weights_preprocessing(data, None) is data


def test_a_model_rebuilt_from_its_config_downloads_nothing():
    config = ModelConfig("cnn_tiny", "transformer_tiny", {"pretrained": True, "pretrained_path": "x"}, vocab_size=5)
    assert config.without_weights_files().encoder_args == {}


def test_real_cached_weights_load_offline(tmp_path):
    """The weights a user's own caches hold (none on a machine without a network: skipped, saying so)."""
    cases = []
    for weights, encoder in REAL_TIMM_WEIGHTS.items():
        path = huggingface_hub.try_to_load_from_cache(timm.models.get_pretrained_cfg(weights).hf_hub_id,
                                                      "model.safetensors")
        if isinstance(path, str):
            cases.append([encoder, {"pretrained": weights.split(".")[1]}, path])
    vgg = vgg16_bn_cache_file(Path(torch.hub.get_dir()).parent)
    if vgg.is_file():
        cases.append(["segnet_vgg16", {"pretrained": True}, str(vgg)])
    if not cases:
        pytest.skip(f"no real timm or torchvision weights cached here ({huggingface_hub.constants.HF_HUB_CACHE}, "
                    f"{vgg.parent}); download them once, e.g. python -c \"import timm; "
                    "timm.create_model('resnet18.tv_in1k', pretrained=True)\"")
    env = offline_env(Path(huggingface_hub.constants.HF_HOME), Path(torch.hub.get_dir()).parent)
    done = run_offline(COMPARE_WEIGHTS, env, json.dumps(cases))
    assert done.returncode == 0, done.stderr[-3000:]
    for report in json_lines(done.stdout):
        assert report["entries"] > 0 and report["equal"] == report["entries"], report
