"""Hand-built download caches for ``encoder_args.pretrained`` and an offline, socket-less subprocess to read them.

timm's weights are cached by huggingface_hub (``HF_HOME/hub/models--timm--NAME.TAG/snapshots/REV/
model.safetensors`` with ``refs/main`` naming REV); torchvision's by torch.hub (``TORCH_HOME/hub/checkpoints/``
under the file name of the weights' URL). The caches made here hold randomly initialised models of the real
classes in the libraries' own formats, so that loading them tests the architecture and the path, not luck.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import safetensors.torch
import timm
import torch
import torchvision
from torchvision.models import VGG16_BN_Weights

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The snapshot revision of every hand-built hub repository (any 40 hex digits).
REVISION = "0123456789abcdef0123456789abcdef01234567"
#: Run before anything else in the subprocess: every socket fails, as on a machine without a network.
BLOCK_NETWORK = """
import socket
class _NoNetwork(socket.socket):
    def __init__(self, *args, **kwargs):
        raise OSError("network blocked by the test")
def _no_address(*args, **kwargs):
    raise OSError("network blocked by the test")
socket.socket, socket.getaddrinfo, socket.create_connection = _NoNetwork, _no_address, _no_address
"""


def write_timm_cache(hf_home: Path, name: str) -> Path:
    """A random-init timm model ``name`` ("arch.tag") as huggingface_hub caches its weights -> the file."""
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id  # e.g. "timm/resnet10t.c3_in1k"
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    model = timm.create_model(name.split(".")[0], pretrained=False)
    path = snapshot / "model.safetensors"
    safetensors.torch.save_file(model.state_dict(), str(path))
    return path


def vgg16_bn_cache_file(torch_home: Path) -> Path:
    """Where torch.hub caches torchvision's VGG16-BN weights under ``torch_home``."""
    return torch_home / "hub" / "checkpoints" / Path(urlparse(VGG16_BN_Weights.IMAGENET1K_V1.url).path).name


def write_vgg16_bn_cache(torch_home: Path) -> Path:
    """A random-init torchvision ``vgg16_bn``'s ``features.*`` entries under torch.hub's file name -> the file.
    (Its classifier, 120M of its 138M parameters, is left out: ``segnet_vgg16`` ignores it.)"""
    path = vgg16_bn_cache_file(torch_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = torchvision.models.vgg16_bn(weights=None).state_dict()
    torch.save({key: value for key, value in state.items() if key.startswith("features.")}, path)
    return path


def offline_env(hf_home: Path, torch_home: Path) -> dict[str, str]:
    """The environment of an offline run reading only these caches (and this tree's package)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    return {**env, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(torch_home),
            "PYTHONPATH": str(REPO_ROOT)}


def run_offline(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``code`` in a new Python whose sockets all fail (``BLOCK_NETWORK`` runs first); ``args`` are its argv."""
    return subprocess.run([sys.executable, "-c", BLOCK_NETWORK + code, *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT)


def json_lines(output: str) -> list:
    """The JSON objects a subprocess printed, one a line."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
