"""Image encoders' pretrained weights by name, through the libraries' own download caches.

timm weights (``cnn*``, ``vit*`` encoders) come through ``timm.create_model(..., pretrained=True)``,
which reads the huggingface_hub cache (``HF_HOME`` / ``HF_HUB_CACHE``) and downloads into it when a
network is there; ``HF_HUB_OFFLINE=1`` keeps it to the cache. torchvision's VGG16-BN weights
(``segnet_vgg16``) come through ``torch.hub.load_state_dict_from_url`` into
``$TORCH_HOME/hub/checkpoints``, read with ``weights_only=True``; with ``HF_HUB_OFFLINE=1`` it does
not try the network either. Weights that are neither cached nor downloadable are one ``WeightsError``
line naming the ways to provide them.

``PretrainedWeights`` is what the weights expect of their inputs (mean, std, size); the training
modules put it into the checkpoint header's ``ImagePreprocessing``, so that training and inference
normalise images as the weights were trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import huggingface_hub
import timm
import torch
from huggingface_hub.errors import HfHubHTTPError
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from multimodal_s2s.encoders.weights import WeightsError
from multimodal_s2s.errors import first_line

#: How a user provides weights when neither the cache nor a network has them.
PROVIDE_WEIGHTS = (
    "run once with a network to cache them, give encoder_args.pretrained_path: FILE instead, "
    "or copy a cache that has them to {cache}"
)


@dataclass(frozen=True)
class PretrainedWeights:
    """Where an encoder's weights came from and the input they were trained on.

    Attributes:
        name: e.g. "timm/resnet50.a1_in1k" (a hub id, a file) or "torchvision/VGG16_BN_Weights.IMAGENET1K_V1".
        mean, std: the per-channel normalisation of images scaled to 0..1.
        input_size: (H, W) the weights were trained at.
    """

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]


def check_pretrained(pretrained: Any, pretrained_path: str | None) -> None:
    """One line unless ``pretrained`` is a bool or a non-empty tag, and at most one of the two is given."""
    if not isinstance(pretrained, bool) and not (isinstance(pretrained, str) and pretrained.strip()):
        raise WeightsError(
            f"encoder_args.pretrained must be true, false or a weights tag (e.g. a1_in1k), got {pretrained!r}"
        )
    if pretrained is not False and pretrained_path is not None:
        raise WeightsError("encoder_args: give pretrained or pretrained_path, not both")


def timm_name(name: str, pretrained: bool | str) -> str:
    """``name`` with the tag of ``pretrained`` (a string): ("resnet50", "a1_in1k") -> "resnet50.a1_in1k"."""
    return f"{name}.{pretrained}" if isinstance(pretrained, str) else name


def create_timm_model(name: str, pretrained: bool | str, **kwargs: Any) -> tuple[nn.Module, PretrainedWeights | None]:
    """``timm.create_model(name[.tag], pretrained=..., **kwargs)`` and, when pretrained, what its weights expect.

    ``name`` may be any timm name (also ``local-dir:FOLDER`` or ``hf-hub:ID``); ``kwargs`` may hold timm's
    ``pretrained_cfg_overlay`` (e.g. ``{"file": PATH}``). Weights not found: one WeightsError line.
    """
    if pretrained is False:
        return timm.create_model(name, pretrained=False, **kwargs), None
    full_name = timm_name(name, pretrained)
    try:
        model = timm.create_model(full_name, pretrained=True, **kwargs)
    except (HfHubHTTPError, OSError) as error:  # not cached and no network, or offline; a missing local-dir:
        if name.startswith("local-dir:"):
            raise WeightsError(f"timm weights {name!r}: {first_line(error)}") from None
        raise WeightsError(_not_found(_hub_id(full_name), error)) from None
    except RuntimeError as error:  # timm: an unknown model name or pretrained tag
        raise WeightsError(f"timm weights {full_name!r}: {first_line(error)}") from None
    return model, _timm_weights(model.pretrained_cfg)


def _timm_weights(cfg: dict[str, Any]) -> PretrainedWeights:
    size = cfg["input_size"]  # (3, H, W)
    name = cfg.get("file") or cfg.get("hf_hub_id") or cfg.get("url") or f"{cfg['architecture']}.{cfg.get('tag')}"
    return PretrainedWeights(str(name), tuple(cfg["mean"]), tuple(cfg["std"]), (int(size[-2]), int(size[-1])))


def _hub_id(name: str) -> str:
    """The hub id of timm's weights ``name`` (e.g. "timm/resnet18.a1_in1k"), or ``name`` when it has none."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except (RuntimeError, ValueError):  # local-dir: and hf-hub: names are not in timm's table
        cfg = None
    return cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else name


def _not_found(name: str, error: BaseException) -> str:
    offline = " (HF_HUB_OFFLINE=1)" if huggingface_hub.constants.HF_HUB_OFFLINE else ""
    return (
        f"timm weights {name!r} are not in the Hugging Face cache {huggingface_hub.constants.HF_HUB_CACHE} and "
        f"cannot be downloaded{offline}: {PROVIDE_WEIGHTS.format(cache='HF_HOME or HF_HUB_CACHE')} "
        f"({type(error).__name__})"
    )


def torchvision_state_dict(weights: WeightsEnum) -> tuple[dict[str, Tensor], PretrainedWeights]:
    """torchvision ``weights``' state dict from ``$TORCH_HOME/hub/checkpoints`` (downloaded there when
    missing and a network is allowed), read with ``weights_only=True``, and what they expect of images."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    name = f"torchvision/{type(weights).__name__}.{weights.name}"
    if not cached.is_file() and huggingface_hub.constants.HF_HUB_OFFLINE:
        raise WeightsError(_torchvision_not_found(name, cached, "HF_HUB_OFFLINE=1"))
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", check_hash=True, weights_only=True)
    except OSError as error:  # URLError: no network
        raise WeightsError(_torchvision_not_found(name, cached, first_line(error))) from None
    except Exception as error:  # an unreadable or truncated file: torch raises many types
        raise WeightsError(f"{name}: cannot read {cached}: {first_line(error)}") from None
    transforms = weights.transforms()
    side = int(transforms.crop_size[0])
    return state, PretrainedWeights(name, tuple(transforms.mean), tuple(transforms.std), (side, side))


def _torchvision_not_found(name: str, cached: Path, reason: str) -> str:
    return (
        f"{name} weights are not at {cached} and cannot be downloaded ({reason}): "
        + PROVIDE_WEIGHTS.format(cache=f"{cached.parent} (TORCH_HOME)")
    )

