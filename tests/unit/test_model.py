"""TransformerLM: causality, positions, and its loss."""

import pytest
import torch

from src.modules import POSITIONAL_KINDS, TransformerLM, masked_cross_entropy
from src.modules.positional import SinusoidalPositions


@pytest.mark.parametrize("positional", POSITIONAL_KINDS)
@pytest.mark.parametrize("heads", [1, 4])
def test_changing_later_tokens_leaves_earlier_logits_unchanged(positional, heads):
    torch.manual_seed(0)
    model = TransformerLM(
        vocab_size=11, max_seq_len=16, d_model=32, layers=2, heads=heads, positional=positional
    ).eval()
    idx = torch.randint(11, (3, 16))
    t = 6
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(11, (3, 16 - t - 1))
    with torch.no_grad():
        before, _ = model(idx)
        after, _ = model(changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])


def test_non_causal_model_sees_the_future():
    """The control for the test above: without the mask, later tokens do change earlier logits."""
    torch.manual_seed(0)
    model = TransformerLM(vocab_size=11, max_seq_len=8, d_model=32, causal=False).eval()
    idx = torch.randint(11, (2, 8))
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    with torch.no_grad():
        assert not torch.allclose(model(idx)[0][:, 0], model(changed)[0][:, 0])


@pytest.mark.parametrize("positional", POSITIONAL_KINDS)
def test_without_positions_and_mask_the_model_is_permutation_equivariant(positional):
    """The tutorial's demonstration 2: with neither positions nor the causal mask, shuffling
    the tokens shuffles the outputs the same way. Every positional kind, rope (which rotates
    q and k inside attention, with nothing added to the embeddings) included, breaks it.
    Unit-variance q and k (qk_init_std) make attention sharp enough for positions to show."""
    torch.manual_seed(0)
    model = TransformerLM(
        vocab_size=11,
        max_seq_len=8,
        d_model=32,
        causal=False,
        positional=positional,
        qk_init_std=32**-0.5,
    ).eval()
    idx, perm = torch.randint(11, (2, 8)), torch.randperm(8)
    with torch.no_grad():
        shuffled_in, shuffled_out = model(idx[:, perm])[0], model(idx)[0][:, perm]
    if positional == "none":
        torch.testing.assert_close(shuffled_in, shuffled_out, atol=1e-5, rtol=1e-5)
    else:  # positions matter: the same tokens elsewhere give other logits
        assert (shuffled_in - shuffled_out).abs().max() > 1e-2


def test_need_weights_returns_one_map_per_layer_and_the_same_logits():
    torch.manual_seed(0)
    model = TransformerLM(vocab_size=7, max_seq_len=10, d_model=16, layers=3, heads=2).eval()
    idx = torch.randint(7, (2, 10))
    with torch.no_grad():
        fast, none = model(idx)
        explicit, maps = model(idx, need_weights=True)
    assert none is None and len(maps) == 3
    assert maps[0].weights.shape == (2, 2, 10, 10)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)


def test_sinusoidal_table_matches_the_formula():
    table = SinusoidalPositions(max_seq_len=5, d_model=6).table
    pos, i = 3, 1  # dims 2i, 2i+1
    angle = torch.tensor(pos / 10000 ** (2 * i / 6))
    torch.testing.assert_close(table[pos, 2 * i], torch.sin(angle))
    torch.testing.assert_close(table[pos, 2 * i + 1], torch.cos(angle))


def test_masked_cross_entropy_counts_only_masked_positions():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 4, 5), torch.randint(5, (2, 4))
    mask = torch.tensor([[False, True, True, False], [False, False, True, True]])
    expected = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
    torch.testing.assert_close(masked_cross_entropy(logits, targets, mask), expected)


def test_too_long_input_is_refused():
    model = TransformerLM(vocab_size=5, max_seq_len=4)
    with pytest.raises(ValueError, match="longer than the model's max_seq_len=4"):
        model(torch.zeros(1, 5, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layers": 0}, "layers=0"),
        ({"d_model": -8}, "d_model=-8"),
        ({"positional": "rotary"}, "positional='rotary'.*learned, sinusoidal, rope, none"),
        ({"heads": 3}, "heads=3 does not divide d_model=64.*1, 2, 4, 8, 16, 32, 64"),
        ({"positional": "rope", "head_dim": 5}, "head_dim=5 .*positional='rope'.*even"),
        ({"positional": "rope", "rope_base": 0}, "rope_base=0 is not allowed"),
    ],
)
def test_bad_model_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerLM(vocab_size=5, max_seq_len=4, **kwargs)


def test_qk_init_std_gives_unit_variance_queries():
    torch.manual_seed(0)
    model = TransformerLM(vocab_size=5, max_seq_len=4, d_model=256, qk_init_std=256**-0.5)
    attn = model.blocks[0].attn
    assert attn.query.weight.std().item() == pytest.approx(1 / 16, rel=0.02)
    x = torch.nn.functional.layer_norm(torch.randn(4096, 256), (256,))
    assert attn.query(x).var().item() == pytest.approx(1.0, rel=0.1)
    gpt2 = TransformerLM(vocab_size=5, max_seq_len=4, d_model=256)
    assert gpt2.blocks[0].attn.key.weight.std().item() == pytest.approx(0.02, rel=0.05)
    with pytest.raises(ValueError, match="qk_init_std=-1 is not allowed"):
        TransformerLM(vocab_size=5, max_seq_len=4, qk_init_std=-1)
