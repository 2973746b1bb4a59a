"""Rotary positions (RoFormer, Su et al. 2021) against a reference written out here."""

import math

import pytest
import torch

from src.modules import MultiHeadAttention, RotaryPositions, TransformerLM
from src.training.build import ConfigError, build
from src.training.run import train
from tests.helpers import TINY


def rotate_by_hand(x: torch.Tensor, base: float) -> torch.Tensor:
    """RoFormer's rotation written out: at position t, the pair (x_2i, x_2i+1) turns by the
    angle t * theta_i, theta_i = base^(-2i/d), as the complex number x_2i + i x_2i+1 times
    e^(i t theta_i). x: (..., T, d)."""
    *_, T, d = x.shape
    out = torch.empty_like(x)
    for t in range(T):
        for i in range(d // 2):
            turn = complex(math.cos(t * base ** (-2 * i / d)), math.sin(t * base ** (-2 * i / d)))
            a, b = x[..., t, 2 * i], x[..., t, 2 * i + 1]
            out[..., t, 2 * i] = turn.real * a - turn.imag * b  # Re((a + ib) * turn)
            out[..., t, 2 * i + 1] = turn.imag * a + turn.real * b  # Im((a + ib) * turn)
    return out


@pytest.mark.parametrize("base", [10000.0, 100.0, 3.5])
def test_rotation_matches_the_reference(base):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)  # (B, nh, T, hs)
    rotary = RotaryPositions(head_dim=8, max_seq_len=16, base=base).double()
    # the module rounds its cos/sin table to float32 when it builds it
    torch.testing.assert_close(rotary(x), rotate_by_hand(x, base), atol=1e-6, rtol=1e-6)


def _attention_by_hand(mha: MultiHeadAttention, x: torch.Tensor, base: float, causal: bool):
    """softmax(scale * rot(q) rot(k)^T) v per head, then W_o: rope turns q and k, never v."""
    B, T, _ = x.shape
    heads, hs = mha.heads, mha.head_dim

    def split(w: torch.Tensor) -> torch.Tensor:
        return (x @ w.T).view(B, T, heads, hs).transpose(1, 2)  # (B, nh, T, hs)

    q = rotate_by_hand(split(mha.query.weight), base)
    k = rotate_by_hand(split(mha.key.weight), base)
    logits = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
    if causal:
        future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
        logits = logits.masked_fill(future, float("-inf"))
    y = logits.softmax(-1) @ split(mha.value.weight)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(B, T, heads * hs) @ mha.out.weight.T, logits


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("need_weights", [False, True])  # the fast path and the explicit one
def test_attention_with_rope_matches_the_reference(causal, need_weights):
    torch.manual_seed(1)
    mha = MultiHeadAttention.from_dims(
        d_model=16, heads=2, positional="rope", rope_base=500, causal=causal
    ).double()
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    expected, expected_logits = _attention_by_hand(mha, x, 500.0, causal)
    with torch.no_grad():
        got, maps = mha(x, need_weights=need_weights)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    if need_weights:
        torch.testing.assert_close(maps.logits, expected_logits, atol=1e-6, rtol=1e-6)


def test_rotated_dot_products_depend_only_on_the_position_difference():
    torch.manual_seed(2)
    rotary = RotaryPositions(head_dim=8, max_seq_len=32, base=10000.0).double()
    q, k = torch.randn(2, 8, dtype=torch.float64).unbind(0)

    def logit(m: int, n: int) -> float:
        """q at position m against k at position n, each rotated where it stands."""
        rq = rotary(q.expand(32, 8))[m]  # q at every position 0..31, read at m
        rk = rotary(k.expand(32, 8))[n]
        return float(rq @ rk)

    for m, n in [(0, 0), (3, 1), (1, 3), (5, 12)]:
        for shift in (1, 7, 19):
            assert logit(m + shift, n + shift) == pytest.approx(logit(m, n), rel=1e-6)
    assert logit(4, 1) != pytest.approx(logit(4, 2), abs=1e-3)  # the difference itself counts


@pytest.mark.parametrize("causal", [True, False])
def test_attention_logits_are_unchanged_when_every_position_shifts(causal):
    """The same tokens `shift` places later give the same logits among themselves."""
    torch.manual_seed(3)
    mha = MultiHeadAttention.from_dims(
        d_model=16, heads=2, positional="rope", causal=causal
    ).double()
    T, shift = 10, 4
    x = torch.randn(1, T, 16, dtype=torch.float64)
    later = torch.cat([torch.randn(1, shift, 16, dtype=torch.float64), x], dim=1)  # x moved on
    with torch.no_grad():
        logits = mha(x, need_weights=True)[1].logits  # (1, nh, T, T)
        later_logits = mha(later, need_weights=True)[1].logits  # (1, nh, T+shift, T+shift)
    torch.testing.assert_close(later_logits[..., shift:, shift:], logits, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(later_logits[..., :T, :T], logits)  # absolute positions differ


@pytest.mark.parametrize("scale", [True, False, 0.3])
@pytest.mark.parametrize("causal", [True, False])
def test_fast_path_equals_explicit_path_with_rope(scale, causal):
    torch.manual_seed(4)
    mha = MultiHeadAttention.from_dims(
        d_model=32, heads=4, scale=scale, causal=causal, positional="rope"
    )
    x = torch.randn(2, 11, 32)
    with torch.no_grad():
        fast, _ = mha(x)
        explicit, _ = mha(x, need_weights=True)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)


def test_rope_base_changes_the_result():
    x = torch.randn(1, 12, 16)
    outputs = []
    for base in (10000, 10):
        torch.manual_seed(5)  # the same weights
        mha = MultiHeadAttention.from_dims(d_model=16, heads=2, positional="rope", rope_base=base)
        with torch.no_grad():
            outputs.append(mha(x)[0])
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-4)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"rope_base": 0}, r"^rope_base=0 is not allowed: it must be a positive number"),
        ({"rope_base": -2.5}, r"^rope_base=-2.5 is not allowed"),
        ({"rope_base": float("nan")}, r"^rope_base=nan is not allowed"),
        ({"rope_base": "big"}, r"^rope_base='big' is not allowed"),
        ({"head_dim": 7}, r"^head_dim=7 is not allowed with positional='rope'.*even"),
        ({"heads": 4, "d_model": 12}, r"^head_dim=3 is not allowed with positional='rope'"),
    ],
)
def test_bad_rope_settings_are_refused_naming_the_value(settings, match):
    with pytest.raises(ValueError, match=match):
        TransformerLM(vocab_size=5, max_seq_len=8, positional="rope", **settings)


def test_rope_adds_no_parameters_and_no_additive_table():
    torch.manual_seed(0)
    rope = TransformerLM(vocab_size=5, max_seq_len=8, positional="rope")
    none = TransformerLM(vocab_size=5, max_seq_len=8, positional="none")
    assert rope.position is None
    assert [(n, p.shape) for n, p in rope.named_parameters()] == [
        (n, p.shape) for n, p in none.named_parameters()
    ]
    assert rope.state_dict().keys() == none.state_dict().keys()  # checkpoints alike


def test_rope_through_the_config_builds_and_trains(compose_cfg):
    parts = build(compose_cfg("model.net.positional=rope", "model.net.rope_base=500", *TINY))
    net = parts.model.net
    assert net.position is None
    for block in net.blocks:
        expected = 500.0 ** (-torch.arange(0, 16, 2, dtype=torch.float64) / 16)  # head_dim 16
        torch.testing.assert_close(block.attn.rotary.cos[1], expected.cos().float())
    result = train(compose_cfg("model.net.positional=rope", *TINY))
    assert result["status"] == "finished" and result["step"] == 6
    assert math.isfinite(result["metrics"]["val/loss"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.net.positional=rope", "model.net.rope_base=0"],
            "model.net.rope_base=0 is not allowed: it must be a positive number.",
        ),
        (
            ["model.net.positional=rope", "model.net.head_dim=7"],
            "model.net.head_dim=7 is not allowed with model.net.positional='rope'",
        ),
        (
            ["model.net.positional=alibi"],
            "model.net.positional='alibi' is not allowed: use one of learned, sinusoidal, rope, "
            "none.",
        ),
    ],
)
def test_bad_rope_config_names_the_key(compose_cfg, overrides, message):
    with pytest.raises(ConfigError) as refused:
        build(compose_cfg(*overrides))
    assert str(refused.value).startswith(message)
