"""Our attention against PyTorch's own, and its fast path against its explicit path."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from src.modules import MultiHeadAttention, explicit_attention, resolve_scale
from src.modules.attention import causal_mask


def _copy_into_torch_mha(ours: MultiHeadAttention, d_model: int, heads: int, bias: bool):
    ref = nn.MultiheadAttention(d_model, heads, bias=bias, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.query.weight, ours.key.weight, ours.value.weight]))
        ref.out_proj.weight.copy_(ours.out.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([ours.query.bias, ours.key.bias, ours.value.bias]))
            ref.out_proj.bias.copy_(ours.out.bias)
    return ref


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_multihead_attention(heads, causal, bias):
    torch.manual_seed(heads)
    d_model, T = 32, 7
    ours = MultiHeadAttention.from_dims(d_model, heads, scale=True, causal=causal, bias=bias)
    if bias:  # non-zero biases, so that copying them is tested too
        for b in (ours.query.bias, ours.key.bias, ours.value.bias, ours.out.bias):
            nn.init.normal_(b)
    ref = _copy_into_torch_mha(ours, d_model, heads, bias)
    x = torch.randn(3, T, d_model)
    mask = causal_mask(T) if causal else None
    expected, expected_weights = ref(
        x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=False
    )
    for need_weights in (False, True):
        got, maps = ours(x, need_weights=need_weights)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(maps.weights, expected_weights, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", [True, False, 0.3, 2.0])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("head_dim", [None, 16])
def test_fast_path_equals_explicit_path(scale, causal, head_dim):
    torch.manual_seed(0)
    mha = MultiHeadAttention.from_dims(32, 4, head_dim=head_dim, scale=scale, causal=causal)
    x = torch.randn(2, 9, 32)
    fast, no_maps = mha(x)
    explicit, maps = mha(x, need_weights=True)
    assert no_maps is None
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    assert maps.weights.shape == (2, 4, 9, 9)
    torch.testing.assert_close(maps.weights.sum(-1), torch.ones(2, 4, 9))
    if causal:
        above = torch.triu(torch.ones(9, 9, dtype=torch.bool), diagonal=1)
        assert torch.all(maps.weights[..., above] == 0)
        assert torch.all(maps.logits[..., above] == float("-inf"))


@pytest.mark.parametrize("scale", [True, False, 0.5])
def test_explicit_attention_equals_sdpa(scale):
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 2, 5, 6, 8).unbind(0)
    factor = resolve_scale(scale, 8)
    for causal in (True, False):
        out, _ = explicit_attention(q, k, v, factor, causal)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=factor)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_scale_switch_values():
    assert resolve_scale(True, 16) == pytest.approx(0.25)
    assert resolve_scale(False, 16) == 1.0
    assert resolve_scale(3, 16) == 3.0
    assert resolve_scale(0.5, 16) == 0.5


@pytest.mark.parametrize("bad", [0, -1, -0.5, "abc", None, float("nan"), float("inf")])
def test_bad_scale_is_refused(bad):
    with pytest.raises(ValueError, match=r"scale=.*true.*false.*positive number"):
        MultiHeadAttention.from_dims(16, 2, scale=bad)


@pytest.mark.parametrize("heads", [0, -1, 2.5, "two"])
def test_bad_heads_is_refused(heads):
    with pytest.raises(ValueError, match="heads=.*positive integer"):
        MultiHeadAttention.from_dims(16, heads)


def test_heads_must_divide_d_model_unless_head_dim_given():
    with pytest.raises(ValueError, match=r"heads=3 does not divide d_model=128.*1, 2, 4, 8"):
        MultiHeadAttention.from_dims(128, 3)
    mha = MultiHeadAttention.from_dims(128, 3, head_dim=32)  # fixed head size: allowed
    assert mha.query.out_features == 96
    assert mha.scale == pytest.approx(1 / math.sqrt(32))
