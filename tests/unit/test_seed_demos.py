"""The six demonstrations of the attention tutorial attnlab follows, with the tutorial's own
numbers, run on attnlab's code (test_N_* is demonstration N):

1. Q = K = V attention on two tokens, "apple" and "pear";
2. without positions or a mask, swapping tokens swaps the outputs;
3. softmax temperature: softmax(x / T) sharpens for T < 1 and flattens for T > 1;
4. unscaled q.k saturates the softmax as d_k grows; 1/sqrt(d_k) keeps it spread;
5. multi-head attention is single heads side by side, mixed by W_o;
6. the causal mask on four tokens.
"""

import math

import pytest
import torch

from src.analysis.attention_stats import attention_stats
from src.modules import MultiHeadAttention, explicit_attention, resolve_scale
from src.modules.attention import causal_mask

APPLE, PEAR = [3.0, 3.0, 0.0], [0.5, 4.0, 0.0]


def _softmax2(a: float, b: float) -> tuple[float, float]:
    """Two-way softmax by hand, independent of torch."""
    p = 1.0 / (1.0 + math.exp(b - a))
    return p, 1.0 - p


def test_1_qkv_attention_apple_pear_with_q_equal_k_equal_v():
    x = torch.tensor([APPLE, PEAR])
    out, maps = explicit_attention(x, x, x, scale=1.0, causal=False)
    # X X^T = [[18, 13.5], [13.5, 16.25]]
    w_apple = _softmax2(18.0, 13.5)  # (0.98901, 0.01099)
    w_pear = _softmax2(13.5, 16.25)  # (0.06008, 0.93992)
    expected_w = torch.tensor([w_apple, w_pear])
    torch.testing.assert_close(maps.weights, expected_w)
    assert maps.weights[0, 0].item() == pytest.approx(0.98901, abs=1e-5)
    assert maps.weights[1, 1].item() == pytest.approx(0.93992, abs=1e-5)
    torch.testing.assert_close(out, expected_w @ x)
    torch.testing.assert_close(out[0], torch.tensor([2.97253, 3.01099, 0.0]), atol=1e-5, rtol=0)


def test_1_output_width_is_the_value_width():
    torch.manual_seed(123)
    w_query, w_key, w_value = torch.rand(3, 4), torch.rand(3, 4), torch.rand(3, 5)
    x = torch.tensor([APPLE, PEAR])
    out, maps = explicit_attention(x @ w_query, x @ w_key, x @ w_value, scale=0.5, causal=False)
    assert out.shape == (2, 5)  # d_v = 5, not the input's 3 nor d_k = 4
    assert maps.weights.shape == (2, 2)
    ref = torch.nn.functional.scaled_dot_product_attention(x @ w_query, x @ w_key, x @ w_value)
    torch.testing.assert_close(out, ref)  # scale 1/sqrt(4) = 0.5 is SDPA's default here


def test_2_swapping_tokens_swaps_outputs_without_positions_or_mask():
    torch.manual_seed(123)
    w_query, w_key, w_value = torch.rand(3, 4), torch.rand(3, 4), torch.rand(3, 5)

    def attend(x):
        return explicit_attention(x @ w_query, x @ w_key, x @ w_value, 0.5, causal=False)[0]

    apple_pear = attend(torch.tensor([APPLE, PEAR]))
    pear_apple = attend(torch.tensor([PEAR, APPLE]))
    torch.testing.assert_close(pear_apple, apple_pear.flip(0))
    # ...and the same for our module on a random permutation of a longer sequence
    mha = MultiHeadAttention.from_dims(8, 2, causal=False)
    x, perm = torch.randn(1, 6, 8), torch.randperm(6)
    torch.testing.assert_close(mha(x[:, perm])[0], mha(x)[0][:, perm], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "temperature, expected",
    [
        (0.5, [0.86377, 0.11690, 0.01933]),
        (1.0, [0.65900, 0.24243, 0.09857]),
        (5.0, [0.39958, 0.32715, 0.27327]),
    ],
)
def test_3_softmax_temperature(temperature, expected):
    x = torch.tensor([2.0, 1.0, 0.1])
    # The model's `scale` is 1/T: q.k = x for q = 1, k_i = x_i; the tutorial's rows come out.
    q, k = torch.ones(1, 1), x.view(3, 1)
    _, maps = explicit_attention(q, k, torch.eye(3), resolve_scale(1 / temperature, 1), False)
    torch.testing.assert_close(maps.weights[0], torch.tensor(expected), atol=1e-5, rtol=0)


def test_3_attentions_entropy_rises_with_the_temperature():
    """The entropy attnlab reports (xray/attn/entropy, compare.py's column) of the tutorial's
    three rows equals their entropy by hand, over log(3), and rises with T."""
    x = torch.tensor([2.0, 1.0, 0.1])
    q, k = torch.ones(3, 1), x.view(3, 1)  # every row's q.k = x (its maps are square)
    entropies = []
    for temperature in (0.5, 1.0, 5.0):
        _, maps = explicit_attention(q, k, torch.eye(3), resolve_scale(1 / temperature, 1), False)
        stats = attention_stats(maps.weights[None, None], maps.logits[None, None], causal=False)
        entropies.append(stats["entropy"].item())
        p = [math.exp(v / temperature) for v in (2.0, 1.0, 0.1)]
        p = [v / sum(p) for v in p]
        by_hand = -sum(v * math.log(v) for v in p) / math.log(3)
        assert entropies[-1] == pytest.approx(by_hand, abs=1e-5)
    assert entropies[0] < entropies[1] < entropies[2] < 1.0  # 1 = uniform


def test_4_unscaled_attention_saturates_and_passes_less_gradient_to_its_logits():
    """Unit-variance q, k with d_k = 256 (q.k has std 16 unscaled): the loss of picking each
    row's favourite key sends the logits far less gradient without the 1/sqrt(d_k) scale,
    because a saturated softmax barely moves (measured: 0.23-0.31x over seeds 0-2)."""
    torch.manual_seed(0)
    d_k = 256
    q, k, v = torch.randn(3, 1, 64, d_k).unbind(0)

    def logit_grad_norm(scale: bool) -> float:
        query = q.clone().requires_grad_(True)
        _, maps = explicit_attention(query, k, v, resolve_scale(scale, d_k), causal=False)
        maps.logits.retain_grad()
        picked = maps.weights.gather(-1, maps.weights.argmax(-1, keepdim=True))  # (1, 64, 1)
        (-picked.log()).sum().backward()
        return maps.logits.grad.norm().item()

    assert logit_grad_norm(scale=False) < 0.5 * logit_grad_norm(scale=True)


def test_4_scale_keeps_attention_spread_at_large_head_size():
    """Unit-variance q, k with d_k = 256: q.k has std 16 unless divided by sqrt(d_k)."""
    torch.manual_seed(0)
    d_k = 256
    q, k, v = torch.randn(3, 1, 64, 64, d_k).unbind(0)
    _, scaled = explicit_attention(q, k, v, resolve_scale(True, d_k), causal=False)
    _, unscaled = explicit_attention(q, k, v, resolve_scale(False, d_k), causal=False)
    assert scaled.logits.std().item() == pytest.approx(1.0, abs=0.1)
    assert unscaled.logits.std().item() == pytest.approx(16.0, abs=1.0)
    assert unscaled.weights.amax(-1).mean() > 0.8 > 0.5 > scaled.weights.amax(-1).mean()


def test_5_multi_head_is_concatenated_single_heads_mixed_by_w_o():
    torch.manual_seed(5)
    heads, d_model = 4, 16
    d_k = d_model // heads
    mha = MultiHeadAttention.from_dims(d_model, heads, causal=False)
    x = torch.randn(2, 5, d_model)
    per_head = []
    for h in range(heads):  # each head its own (W_q, W_k, W_v): rows h*d_k .. (h+1)*d_k
        rows = slice(h * d_k, (h + 1) * d_k)
        q = x @ mha.query.weight[rows].T
        k = x @ mha.key.weight[rows].T
        v = x @ mha.value.weight[rows].T
        per_head.append(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d_k), -1) @ v)
    expected = torch.cat(per_head, dim=-1) @ mha.out.weight.T  # W_o: (heads*d_v) -> d_model
    torch.testing.assert_close(mha(x)[0], expected, atol=1e-5, rtol=1e-5)


def test_6_causal_mask_on_four_tokens():
    torch.manual_seed(6)
    x = torch.randn(4, 3)
    mask = torch.triu(torch.ones(4, 4), diagonal=1).bool()
    assert torch.equal(causal_mask(4), mask)
    _, maps = explicit_attention(x, x, x, scale=1.0, causal=True)
    assert torch.all(maps.weights[mask] == 0)
    torch.testing.assert_close(maps.weights.sum(-1), torch.ones(4))
    assert maps.weights[0].tolist() == [1.0, 0.0, 0.0, 0.0]  # token 0 sees only itself
    scores = (x @ x.T).masked_fill(mask, float("-inf"))
    torch.testing.assert_close(maps.weights, torch.softmax(scores, -1))
