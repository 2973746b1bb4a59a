"""Properties of attention over random shapes and switches (hypothesis finds the corners)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from src.modules import MultiHeadAttention

shapes = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 3),
        "seq_len": st.integers(1, 12),
        "heads": st.integers(1, 4),
        "head_dim": st.integers(1, 12),
        "scale": st.one_of(st.booleans(), st.floats(0.01, 4.0)),
        "causal": st.booleans(),
        "positional": st.sampled_from(["none", "rope"]),  # rope: q and k rotated by position
        "seed": st.integers(0, 2**16),
    }
)
PROPERTY = settings(max_examples=60, deadline=None)


def _attention_and_input(case: dict) -> tuple[MultiHeadAttention, torch.Tensor]:
    torch.manual_seed(case["seed"])
    head_dim = case["head_dim"] + (case["positional"] == "rope" and case["head_dim"] % 2)  # even
    d_model = case["heads"] * head_dim
    attn = MultiHeadAttention.from_dims(
        d_model=d_model,
        heads=case["heads"],
        scale=case["scale"],
        causal=case["causal"],
        positional=case["positional"],
    ).double()  # float64: the two paths then agree to rounding, whatever the scale
    x = torch.randn(case["batch"], case["seq_len"], d_model, dtype=torch.float64)
    return attn, x


@PROPERTY
@given(shapes)
def test_fast_path_equals_explicit_path(case):
    attn, x = _attention_and_input(case)
    fast, _ = attn(x)
    explicit, maps = attn(x, need_weights=True)
    torch.testing.assert_close(fast, explicit, atol=1e-9, rtol=1e-9)
    assert maps.weights.shape == (case["batch"], case["heads"], case["seq_len"], case["seq_len"])


@PROPERTY
@given(shapes)
def test_weight_rows_are_distributions(case):
    attn, x = _attention_and_input(case)
    _, maps = attn(x, need_weights=True)
    rows = maps.weights.sum(dim=-1)  # (B, nh, T)
    torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-12, rtol=0)
    assert bool((maps.weights >= 0).all())


@PROPERTY
@given(shapes, st.data())
def test_causal_outputs_ignore_the_future(case, data):
    """With the mask, changing tokens after position t changes no output at or before t."""
    case = {**case, "causal": True}
    attn, x = _attention_and_input(case)
    T = case["seq_len"]
    t = data.draw(st.integers(0, T - 1), label="t")
    changed = x.clone()
    changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
    for need_weights in (False, True):
        before, _ = attn(x, need_weights=need_weights)
        after, _ = attn(changed, need_weights=need_weights)
        torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], atol=1e-12, rtol=0)
    _, maps = attn(x, need_weights=True)
    assert bool((maps.weights.triu(diagonal=1) == 0).all())  # no weight on a future key
