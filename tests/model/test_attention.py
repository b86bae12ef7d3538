"""PaSST's attention through the fused kernel equals hear21passt's own, outputs and gradients."""

import copy

import pytest
import torch
from hear21passt.models.passt import PaSST

from audioretrieval.model.attention import SdpaAttention, use_fused_attention


def small_passt() -> PaSST:
    torch.manual_seed(0)
    return PaSST(
        img_size=(128, 100),
        patch_size=16,
        stride=16,
        in_chans=1,
        num_classes=527,
        embed_dim=64,
        depth=2,
        num_heads=4,
        distilled=True,
        s_patchout_t=2,
        s_patchout_f=1,
    )


@pytest.mark.parametrize("training", [True, False])
def test_fused_attention_gives_the_same_outputs_and_gradients(training):
    original = small_passt()
    fused = copy.deepcopy(original)
    use_fused_attention(fused)
    assert all(isinstance(block.attn, SdpaAttention) for block in fused.blocks)
    assert original.state_dict().keys() == fused.state_dict().keys()
    mel = torch.randn(3, 1, 128, 100)
    outputs = []
    for model in (original, fused):
        model.train(training)
        torch.manual_seed(1)  # the same structured patchout in training
        cls_token, dist_token = model.forward_features(mel)
        (cls_token + dist_token).square().mean().backward()
        outputs.append((cls_token, dist_token, {n: p.grad for n, p in model.named_parameters()}))
    (cls_a, dist_a, grads_a), (cls_b, dist_b, grads_b) = outputs
    assert torch.allclose(cls_a, cls_b, atol=1e-5) and torch.allclose(dist_a, dist_b, atol=1e-5)
    for name, grad in grads_a.items():
        if grad is None:  # the AudioSet heads, unused here
            assert grads_b[name] is None, name
            continue
        assert torch.allclose(grad, grads_b[name], atol=1e-6, rtol=1e-4), (name, (grad - grads_b[name]).abs().max())
