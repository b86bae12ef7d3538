"""PaSST's self-attention through torch.nn.functional.scaled_dot_product_attention.

hear21passt's Attention materialises the [heads, tokens, tokens] attention matrix; the fused kernel
computes the same softmax(q k^T * scale) v without it (flash or memory-efficient attention on a
GPU), with the same parameters, so checkpoints are unchanged and the outputs agree to float
tolerance (tests/model/test_attention.py).
"""

from __future__ import annotations

import torch.nn.functional as F
from hear21passt.models.passt import Attention, PaSST


class SdpaAttention(Attention):
    """hear21passt's Attention (same parameters, same result) computed by the fused kernel."""

    def forward(self, x):
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        dropout = self.attn_drop.p if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(batch, tokens, channels)))


def use_fused_attention(passt: PaSST) -> None:
    """Compute every block's attention with SdpaAttention, in place (parameter names unchanged)."""
    for block in passt.blocks:
        block.attn.__class__ = SdpaAttention
