"""The convolution block of the dense decoders and SegNet's encoder: torchvision's ``Conv2dNormActivation``
(Conv2d, BatchNorm2d, ReLU), imported when a block is first built: ``torchvision.ops`` costs about 1.6 s to
import, which commands that build no dense model (``mms2s transcribe``) should not pay."""

from __future__ import annotations

from typing import Any

from torch import nn


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int, **kwargs: Any) -> nn.Sequential:
    """(B, in_channels, H, W) -> (B, out_channels, H', W'): torchvision's Conv2dNormActivation (its
    ``padding`` the kernel's half, so H' = H at stride 1), keyword arguments passed on."""
    from torchvision.ops import Conv2dNormActivation

    return Conv2dNormActivation(in_channels, out_channels, kernel_size, **kwargs)
