"""EfficientAT's MobileNetV3 (Schmid et al., `mn40_as_ext` in the reference code): the same Kaldi log-mel
front end as PaSST at 32 kHz, a MobileNetV3 (Howard et al. 2019, its "large" layout, channel
squeeze-and-excitation) scaled by `width_mult`, and a window's token the global mean of its last
feature map (3,840-d at width 4.0).

The module layout is EfficientAT's (`models/mn/model.py`, as the reference code vendors it in
models/audio/external/MobileNetV3.py), so its published AudioSet weights load key for key; their
classifier (`classifier.*`), which the reference code builds but never uses, is not built here.
"""

from __future__ import annotations

import torch
from torch import nn

from audioretrieval.model.audio import AudioEncoder, WeightsUnavailable, published_weights
from audioretrieval.model.mel import MelFrontEnd

# EfficientAT's release (github.com/fschmid56/EfficientAT, v0.0.1): the reference code's mn40_as_ext.
WEIGHTS_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn40_as_ext_mAP_487.pt"
# Not recorded yet: nothing on this project's machines can reach GitHub's release files. Set
# model.audio.weights_md5 to pin a download.
WEIGHTS_MD5 = None
BN_MOMENTUM = 0.01  # EfficientAT's, made for fine-tuning its weights over thousands of steps
UNUSED = ("classifier.",)  # EfficientAT's AudioSet classifier (Linear, Hardswish, Dropout, Linear 527)

# MobileNetV3-Large, per bottleneck: kernel, expanded channels, output channels, squeeze-and-excitation,
# activation (RE: ReLU, HS: Hardswish), stride; channels before width scaling. The first block takes 16.
LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]
ACTIVATIONS = {"RE": nn.ReLU, "HS": nn.Hardswish}


def divisible(channels: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of `divisor`, never more than 10 % below (the MobileNet rule)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def conv_norm(inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1, activation=None):
    """Conv2d (no bias), BatchNorm2d (EfficientAT's eps and momentum; MobileNetV3 may change the
    momentum), activation: torchvision's Conv2dNormActivation layout (Sequential 0, 1, 2)."""
    layers = [
        nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs, eps=0.001, momentum=0.01),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class ChannelExcitation(nn.Module):
    """Squeeze-and-excitation over channels: the mean over frequency and time scales each channel."""

    def __init__(self, channels: int):
        super().__init__()
        squeezed = divisible(channels // 4)
        self.fc1 = nn.Linear(channels, squeezed)
        self.fc2 = nn.Linear(squeezed, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * scale[:, :, None, None]


class Excitations(nn.Module):
    """EfficientAT's concurrent squeeze-and-excitation with one branch (channels), max-aggregated."""

    def __init__(self, channels: int):
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelExcitation(channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([layer(x) for layer in self.conc_se_layers]).amax(0)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expansion (when it widens), depthwise conv, excitation, 1x1 projection."""

    def __init__(self, inputs: int, kernel: int, expanded: int, outputs: int, excite: bool, act: str, stride: int):
        super().__init__()
        activation = ACTIVATIONS[act]
        layers = [conv_norm(inputs, expanded, 1, activation=activation)] if expanded != inputs else []
        layers.append(conv_norm(expanded, expanded, kernel, stride, groups=expanded, activation=activation))
        if excite:
            layers.append(Excitations(expanded))
        layers.append(conv_norm(expanded, outputs, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class MobileNetV3(nn.Module):
    """[N, 1, mels, frames] -> the last feature map [N, 6 * divisible(160 * width_mult), mels / 32, frames / 32]."""

    def __init__(self, width_mult: float, bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        channels = divisible(16 * width_mult)
        layers = [conv_norm(1, channels, 3, 2, activation=nn.Hardswish)]
        for kernel, expanded, outputs, excite, act, stride in LARGE:
            outputs = divisible(outputs * width_mult)
            layers.append(Bottleneck(channels, kernel, divisible(expanded * width_mult), outputs, excite, act, stride))
            channels = outputs
        self.width = 6 * channels
        layers.append(conv_norm(channels, self.width, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = bn_momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def load_published(network: MobileNetV3, state: dict, width_mult: float) -> None:
    """EfficientAT's weights into `network`, strictly, but for the classifier this project does not build."""
    kept = {key: value for key, value in state.items() if not key.startswith(UNUSED)}
    try:
        network.load_state_dict(kept)
    except RuntimeError as exc:
        raise WeightsUnavailable(
            f"model.audio.weights: not the weights of an EfficientAT MobileNetV3 of width_mult {width_mult} ({exc})"
        ) from exc


class MobileNetAudioEncoder(AudioEncoder):
    family = "mn"
    sample_rate = 32000

    def __init__(self, cfg: dict, segment_s: float, out_dim: int):
        super().__init__(cfg, segment_s)
        self.mel = MelFrontEnd()
        self.network = MobileNetV3(cfg["width_mult"], cfg.get("bn_momentum", BN_MOMENTUM))
        self.width = self.network.width
        if cfg.get("pretrained"):
            md5 = cfg.get("weights_md5") or WEIGHTS_MD5
            state = published_weights("EfficientAT weights", WEIGHTS_URL, md5, cfg.get("weights"))
            load_published(self.network, state, cfg["width_mult"])
        self.projection = nn.Linear(self.width, out_dim)

    def fixed_features(self, windows: torch.Tensor) -> torch.Tensor:
        return self.mel.power(windows)

    def tokens(self, power: torch.Tensor) -> torch.Tensor:
        mel = self.mel.mel_in_fp32(power)
        return self.network(mel.unsqueeze(1)).mean((2, 3)).unsqueeze(1)

    def compile_network(self) -> None:
        self.network.compile()
