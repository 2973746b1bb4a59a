"""Head knock-out (Michel et al. 2019): a head mask on the attention module, not a model copy."""

import json

import pytest
import torch

from src.modules import MultiHeadAttention, TransformerLM, head_knockout_losses, knockout_mask
from src.training.run import train
from tests.helpers import TINY, read_events


def _attention() -> tuple[MultiHeadAttention, torch.Tensor]:
    torch.manual_seed(0)
    return MultiHeadAttention.from_dims(d_model=24, heads=3), torch.randn(2, 7, 24)


@pytest.mark.parametrize("need_weights", [False, True])
def test_masking_no_head_equals_the_plain_forward_exactly(need_weights):
    attn, x = _attention()
    plain, _ = attn(x, need_weights)
    kept, _ = attn(x, need_weights, head_mask=torch.ones(3))
    assert torch.equal(plain, kept)


@pytest.mark.parametrize("head", [0, 1, 2])
def test_masking_one_head_equals_zeroing_its_slice_of_w_o_by_hand(head):
    attn, x = _attention()
    mask = torch.ones(3)
    mask[head] = 0
    masked, _ = attn(x, head_mask=mask)
    by_hand = MultiHeadAttention.from_dims(d_model=24, heads=3)
    by_hand.load_state_dict(attn.state_dict())
    with torch.no_grad():
        by_hand.out.weight[:, head * 8 : (head + 1) * 8] = 0  # W_o's input columns of that head
    torch.testing.assert_close(masked, by_hand(x)[0], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(masked, attn(x)[0])  # and it did change the output


def test_masking_every_head_leaves_only_the_residual_path():
    torch.manual_seed(0)
    net = TransformerLM(vocab_size=9, max_seq_len=6, d_model=16, layers=2, heads=4).eval()
    idx = torch.randint(9, (3, 6))
    with torch.no_grad():
        masked, _ = net(idx, head_mask=torch.zeros(2, 4))
        x = net.token_embedding(idx) + net.position(torch.arange(6))
        for block in net.blocks:  # attention contributes nothing: x + mlp(ln(x)) only
            x = x + block.mlp(block.ln_mlp(x))
        residual_only = net.lm_head(net.ln_final(x))
    torch.testing.assert_close(masked, residual_only, atol=1e-5, rtol=1e-5)


def test_a_mask_of_the_wrong_shape_is_refused_with_the_allowed_shape():
    attn, x = _attention()
    with pytest.raises(ValueError, match=r"3 heads, so it must have shape \(3,\)"):
        attn(x, head_mask=torch.ones(4))
    net = TransformerLM(vocab_size=9, max_seq_len=6, d_model=16, layers=2, heads=4)
    with pytest.raises(ValueError, match="one per layer"):
        net(torch.zeros(1, 6, dtype=torch.long), head_mask=torch.ones(3, 4))


@pytest.mark.parametrize(("layer", "head"), [(2, 0), (0, 4), (-1, 0), (0, -1)])
def test_a_knockout_index_out_of_range_names_the_allowed_range(layer, head):
    net = TransformerLM(vocab_size=9, max_seq_len=6, d_model=16, layers=2, heads=4)
    with pytest.raises(ValueError, match=r"layers 0\.\.1 and heads 0\.\.3"):
        knockout_mask(net, layer, head)
    assert knockout_mask(net, 1, 3)[1, 3] == 0 and knockout_mask(net, 1, 3).sum() == 7


def test_knockout_losses_have_one_entry_per_head_and_match_a_masked_forward():
    torch.manual_seed(0)
    net = TransformerLM(vocab_size=9, max_seq_len=6, d_model=16, layers=2, heads=4).eval()
    idx, targets = torch.randint(9, (5, 6)), torch.randint(9, (5, 6))
    loss_mask = torch.ones(5, 6, dtype=torch.bool)
    base, losses = head_knockout_losses(net, idx, targets, loss_mask)
    assert losses.shape == (2, 4)
    mask = torch.ones(2, 4)
    mask[1, 2] = 0
    logits = net(idx, head_mask=mask)[0]
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(losses[1, 2], expected)
    assert base == pytest.approx(
        torch.nn.functional.cross_entropy(net(idx)[0].flatten(0, 1), targets.flatten()).item()
    )


def test_every_run_ends_with_a_knockout_per_head_in_tensorboard(compose_cfg, tmp_path):
    """HeadKnockout runs at the end of a real run: one scalar per (layer, head), a bar image
    per layer, and a base loss equal to the run's own final val loss (same weights, same
    val set, computed independently by Lightning's validation loop)."""
    train(compose_cfg("heads=2", "model.net.layers=2", "model.net.d_model=16", *TINY))
    events = read_events(tmp_path)
    tags = events.Tags()
    expected = {f"xray/knockout/layer{layer}/head{head}" for layer in (0, 1) for head in (0, 1)}
    assert expected <= set(tags["scalars"])
    assert {"xray/knockout/layer0", "xray/knockout/layer1"} <= set(tags["images"])
    base = events.Scalars("xray/knockout/base_loss")[-1].value
    final = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["val/loss"]
    assert base == pytest.approx(final, rel=1e-4)
