"""ResNet-18 / ResNet-50 backbones (He et al., "Deep Residual Learning", CVPR 2016).

Built from torchvision's ``BasicBlock`` / ``Bottleneck`` so that parameter names are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1`` ...): an ImageNet checkpoint a user holds loads with
``load_pretrained``. The official RAP-SAM checkpoint uses mmdet's ResNet (``style='pytorch'``), whose
names and numerics are the same, so its ``backbone.*`` keys map one to one.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from .base import Backbone

_ARCH = {
    18: (tv_resnet.BasicBlock, (2, 2, 2, 2)),
    34: (tv_resnet.BasicBlock, (3, 4, 6, 3)),
    50: (tv_resnet.Bottleneck, (3, 4, 6, 3)),
    101: (tv_resnet.Bottleneck, (3, 4, 23, 3)),
}


class ResNet(Backbone):
    """ResNet trunk returning C2..C5 (strides 4, 8, 16, 32).

    Args:
        depth: 18, 34, 50 or 101.
        norm_eval: keep BatchNorm statistics frozen in training (the official recipe's ``norm_eval=True``).
    """

    def __init__(self, depth: int = 50, norm_eval: bool = True) -> None:
        super().__init__(norm_eval=norm_eval)
        if depth not in _ARCH:
            raise ValueError(f"ResNet depth must be one of {sorted(_ARCH)}, got {depth}")
        block, layers = _ARCH[depth]
        net = tv_resnet.ResNet(block, list(layers))
        self.depth = depth
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        width = 64 * block.expansion
        self.channels = (width, width * 2, width * 4, width * 8)
        self.strides = (4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def load_pretrained(self, path: str) -> None:
        """Load a torchvision-format ImageNet checkpoint (``resnet50-*.pth``); ``fc.*`` is ignored.

        Also accepts files whose weights sit under ``state_dict`` / ``model`` and mmdet/mmengine
        prefixes ``backbone.`` / ``module.``.
        """
        from ...weights import read_torch_checkpoint, strip_prefixes

        sd = strip_prefixes(read_torch_checkpoint(path), ("module.", "backbone."))
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing:
            raise ValueError(
                f"{path} is not a ResNet-{self.depth} checkpoint: {len(missing)} backbone keys are missing "
                f"(e.g. {missing[:5]}) and {len(unexpected)} keys are unknown (e.g. {unexpected[:5]}). "
                f"Pass torchvision's resnet{self.depth} ImageNet weights (keys conv1.weight, layer1.0.* ...)."
            )
        bad = [k for k in own if tuple(own[k].shape) != tuple(sd[k].shape)]
        if bad:
            raise ValueError(
                f"{path}: shape mismatch for {bad[:5]} (e.g. {tuple(sd[bad[0]].shape)} vs "
                f"{tuple(own[bad[0]].shape)}): the file is for another ResNet depth."
            )
        self.load_state_dict({k: sd[k] for k in own}, strict=True)


def resnet18(**kwargs) -> ResNet:
    return ResNet(18, **kwargs)


def resnet50(**kwargs) -> ResNet:
    return ResNet(50, **kwargs)
