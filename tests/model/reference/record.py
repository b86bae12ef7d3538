"""Records what the reference code's audio encoders compute, for tests/model/test_audio_families.py.

Run with the reference code (github.com/OptimusPrimus/salsa) on the path, in an environment that has
its extra requirements (torchvision, einops, sacred):

    python tests/model/reference/record.py SALSA_DIR tests/model/reference/audio_encoders.pt

It writes, for EfficientAT's MobileNetV3 (width 4.0, the reference code's mn40_as_ext) and ATST-Frame
base: every state-dict key and shape; their front ends' outputs on a fixed half-second signal; and, at
small sizes with seeded random weights, the networks' weights, one input and the features the
reference code takes from them (models/audio/efficientat.py: the pooled features; models/audio/atst.py:
the last block's normalised frame tokens).
"""

import contextlib
import io
import sys
import types

import numpy as np
import torch

salsa, out = sys.argv[1:3]
sys.path.insert(0, salsa)
# models/audio/atst.py imports the reference code's folder settings (a sacred ingredient): not needed here
directories = types.ModuleType("utils.directories")
directories.directories = None
directories.get_pretrained_model_dir = lambda: "."
sys.modules["utils.directories"] = directories
sys.modules["sacred"] = types.SimpleNamespace(Ingredient=lambda *a, **k: types.SimpleNamespace(capture=lambda f: f))

from models.audio.atst import ATSTMel  # noqa: E402
from models.audio.external.atst.audio_transformer import FrameAST, FrameASTModel  # noqa: E402
from models.audio.external.MobileNetV3 import AugmentMelSTFT, get_model  # noqa: E402
from torchaudio.transforms import Resample  # noqa: E402


def layout(module):
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def quiet(build):
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


rng = np.random.default_rng(0)
t = np.arange(16000) / 32000
signal = 0.3 * np.sin(2 * np.pi * (300 + 3000 * t) * t) + 0.05 * rng.standard_normal(16000)
waveform = torch.tensor(signal, dtype=torch.float32)[None]

record = {
    "mn40_layout": layout(quiet(lambda: get_model(width_mult=4.0, pretrained_name=None))),
    "atst_base_layout": layout(FrameASTModel(atst_dropout=0.0)),
    "waveform_32k": waveform,
}
# The reference code's front ends: get_efficientat's AugmentMelSTFT (freqm, timem off as the paper runs
# it) and ATSTWrapper's resampler and ATSTMel, in evaluation mode.
mel = quiet(lambda: AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=0, timem=0))
with torch.no_grad():
    record["mn_mel"] = mel.eval()(waveform)
    record["atst_mel"] = ATSTMel().eval()(Resample(32000, 16000)(waveform))[:, 0]

torch.manual_seed(0)
mn = quiet(lambda: get_model(width_mult=0.1, pretrained_name=None)).eval()
atst = FrameAST(
    patch_h=64, patch_w=4, embed_dim=32, depth=2, num_heads=4, norm_layer=lambda d: torch.nn.LayerNorm(d, eps=1e-6)
).eval()
with torch.no_grad():
    for module in mn.modules():  # BatchNorm statistics other than the initial ones
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    mn_input = torch.randn(2, 1, 128, 100)
    atst_input = torch.randn(2, 1, 64, 101)
    record["mn01"] = {"state": mn.state_dict(), "input": mn_input, "features": mn(mn_input)[0]}
    tokens = atst.get_intermediate_layers(atst_input, torch.tensor([101, 101]), 1, scene=False)
    record["atst_small"] = {"state": atst.state_dict(), "input": atst_input[:, 0], "tokens": tokens}
torch.save(record, out)
print(f"wrote {out}: mn40 {len(record['mn40_layout'])} tensors, ATST-Frame base {len(record['atst_base_layout'])}")
