"""Attention diagnostics on hand-made maps, and gradient norms against the parameters."""

import copy

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger

from src.analysis.attention_stats import attention_scalars, attention_stats
from src.analysis.metric_names import ATTN_STATS
from src.data.datamodule import TRAIN_STREAM, VAL_STREAM, TaskDataModule, task_batch
from src.data.tasks import Sort
from src.modules import AttentionMaps, TransformerLM, masked_cross_entropy
from src.training.callbacks import AttentionDiagnostics
from src.training.lit_module import LitTransformerLM


def _maps_from(weights: torch.Tensor) -> AttentionMaps:
    return AttentionMaps(weights, weights.log())


def test_uniform_causal_map_has_entropy_one_using_i_plus_one_keys():
    T = 6
    rows = [
        torch.cat([torch.full((i + 1,), 1 / (i + 1)), torch.zeros(T - i - 1)]) for i in range(T)
    ]
    weights = torch.stack(rows).expand(2, 3, T, T)  # (B, nh, T, T)
    stats = attention_stats(weights, weights.log(), causal=True)
    torch.testing.assert_close(stats["entropy"], torch.ones(3))
    # Row i has 1/(i+1) as its largest weight; rows 1..T-1 are averaged (row 0 has no choice).
    expected_max = sum(1 / (i + 1) for i in range(1, T)) / (T - 1)
    torch.testing.assert_close(stats["max_prob"], torch.full((3,), expected_max))
    torch.testing.assert_close(stats["saturated_frac"], torch.zeros(3))


def test_uniform_full_map_has_entropy_one_using_all_keys():
    weights = torch.full((1, 2, 5, 5), 0.2)
    stats = attention_stats(weights, torch.zeros(1, 2, 5, 5), causal=False)
    torch.testing.assert_close(stats["entropy"], torch.ones(2))
    # the causal normalisation would be wrong here: log(i+1) would give values above 1
    assert stats["max_prob"].tolist() == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize("causal", [True, False])
def test_one_hot_map_has_entropy_zero_and_saturation_one(causal):
    T = 5
    weights = torch.zeros(2, 2, T, T)
    weights[..., 0] = 1.0  # every row attends only to the first key (visible in both cases)
    stats = attention_stats(weights, torch.zeros_like(weights), causal)
    torch.testing.assert_close(stats["entropy"], torch.zeros(2))
    torch.testing.assert_close(stats["max_prob"], torch.ones(2))
    torch.testing.assert_close(stats["saturated_frac"], torch.ones(2))


def test_logit_statistics_ignore_masked_entries():
    logits = torch.tensor([[0.0, -1e9], [3.0, -3.0]]).expand(1, 1, 2, 2).clone()
    logits[..., 0, 1] = float("-inf")  # masked
    stats = attention_stats(logits.softmax(-1), logits, causal=True)
    visible = torch.tensor([0.0, 3.0, -3.0])
    torch.testing.assert_close(stats["logit_std"], visible.std().reshape(1))
    torch.testing.assert_close(stats["logit_absmax"], torch.tensor([3.0]))


def test_scalars_name_every_layer_and_head_and_summarise():
    uniform = torch.full((1, 2, 4, 4), 0.25)
    one_hot = torch.zeros(1, 2, 4, 4)
    one_hot[..., 0] = 1
    scalars = attention_scalars([_maps_from(uniform), _maps_from(one_hot)], causal=False)
    assert scalars["xray/attn/layer0/head1/entropy"] == pytest.approx(1.0)
    assert scalars["xray/attn/layer1/head0/entropy"] == pytest.approx(0.0)
    assert scalars["xray/attn/entropy"] == pytest.approx(0.5)
    assert len([k for k in scalars if k.startswith("xray/attn/layer")]) == 2 * 2 * len(ATTN_STATS)


@pytest.mark.parametrize("causal", [True, False])
def test_distance_is_how_many_positions_back_a_head_reads(causal):
    """A previous-token head reads 1 back, a self head 0, a head on the first token i back
    (mean over rows 1..T-1); a uniform causal row i reads i/2 back on average."""
    T = 6
    previous, itself, first = torch.zeros(3, T, T)
    for i in range(T):
        previous[i, max(i - 1, 0)] = 1
        itself[i, i] = 1
        first[i, 0] = 1
    weights = torch.stack([previous, itself, first]).unsqueeze(0)  # (1, 3, T, T)
    stats = attention_stats(weights, torch.zeros_like(weights), causal)
    rows = range(1, T) if causal else range(T)  # a causal row 0 has no choice: left out
    expected = [1 if causal else (T - 1) / T, 0, sum(rows) / len(rows)]
    torch.testing.assert_close(stats["distance"], torch.tensor(expected))
    if causal:
        uniform = torch.stack(
            [
                torch.cat([torch.full((i + 1,), 1 / (i + 1)), torch.zeros(T - i - 1)])
                for i in range(T)
            ]
        ).expand(1, 1, T, T)
        mean_half = sum(i / 2 for i in range(1, T)) / (T - 1)
        torch.testing.assert_close(
            attention_stats(uniform, uniform.log(), True)["distance"], torch.tensor([mean_half])
        )


def test_the_statistics_computed_are_the_ones_declared():
    stats = attention_stats(torch.full((1, 1, 3, 3), 1 / 3), torch.zeros(1, 1, 3, 3), False)
    assert tuple(stats) == ATTN_STATS


def test_the_probe_is_the_start_of_the_fixed_val_set_across_batches():
    """probe_batch and validation_set: the val set every run is scored on, whole or its
    first examples, however it is split into batches (here 3 batches of 8, probe of 20)."""
    task = Sort(length=4, num_symbols=5)
    datamodule = TaskDataModule(task, batch_size=8, val_size=24, seed=0, val_seed=7)
    reference = task_batch(task, 24, seed=7, stream=VAL_STREAM, step=0)
    for got, want in zip(datamodule.validation_set(), reference):
        assert torch.equal(got, want)
    for got, want in zip(datamodule.probe_batch(20), reference):
        assert torch.equal(got, want[:20])


class _Recorder(Logger):
    """Keeps every logged scalar: {step: {name: value}}."""

    def __init__(self):
        super().__init__()
        self.logged: dict[int, dict[str, float]] = {}

    name, version = "recorder", 0

    def log_metrics(self, metrics, step=None):
        self.logged.setdefault(step, {}).update(metrics)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_logged_query_key_gradient_norms_equal_the_parameters_own():
    task = Sort(length=4, num_symbols=5)
    torch.manual_seed(0)
    net = TransformerLM(task.vocab_size, task.seq_len, d_model=16, layers=2, heads=2, scale=False)
    reference = copy.deepcopy(net)
    datamodule = TaskDataModule(task, batch_size=8, val_size=16, seed=0)

    # By hand: one backward pass on the first training batch.
    batch = task_batch(task, 8, seed=0, stream=TRAIN_STREAM, step=0)
    logits, _ = reference(batch.inputs)
    masked_cross_entropy(logits, batch.targets, batch.loss_mask).backward()
    expected = {
        f"xray/grad/layer{i}/{p}": getattr(reference.blocks[i].attn, p).weight.grad.norm().item()
        for i in range(2)
        for p in ("query", "key")
    }
    all_grads = torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None])
    expected["xray/grad/total"] = all_grads.norm().item()

    recorder = _Recorder()
    trainer = L.Trainer(
        max_steps=1,
        logger=recorder,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[AttentionDiagnostics(grad_every_n_steps=1)],
        val_check_interval=1,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
    )
    trainer.fit(LitTransformerLM(net, warmup_steps=1), datamodule=datamodule)
    logged = {k: v for k, v in recorder.logged[0].items() if k.startswith("xray/grad/")}
    assert logged.keys() == expected.keys()
    for name, value in expected.items():
        assert logged[name] == pytest.approx(value, rel=1e-5), name
    assert "xray/attn/layer1/head1/entropy" in recorder.logged[0]  # maps at the start, too


def test_heatmap_image_puts_labelled_heads_side_by_side_with_the_mask_and_a_colour_bar():
    from src.analysis.attention_stats import visible_keys
    from src.training.callbacks.diagnostics import MASKED_GREY, heatmap_geometry, heatmap_image

    weights = torch.zeros(3, 16, 16)
    weights[:, :, 0] = 1.0  # everything on the first key
    tokens = list("abcdefgh|abcdefg")
    image = heatmap_image(weights, tokens, visible_keys(16, causal=True))
    g = heatmap_geometry(3, 16, tokens)
    assert image.dtype == np.uint8 and image.shape == (g.height, g.width, 3)
    assert g.cell * 16 == g.panel >= 192  # readable without zooming
    grey = round(MASKED_GREY * 255)
    for head in range(3):
        x, y = g.left + head * (g.panel + g.gap), g.top
        hot = image[y + 5 * g.cell + 2, x + 2]  # row 5, key 0
        cold = image[y + 5 * g.cell + 2, x + 3 * g.cell + 2]  # row 5, key 3
        masked = image[y + 2, x + 5 * g.cell + 2]  # row 0 may not see key 5
        assert hot.tolist() != cold.tolist() and masked.tolist() == [grey] * 3
        title = image[2:14, x : x + 40]  # "head h" above the panel: dark text on white
        assert (title < 128).any()
    assert (image[g.top :, : g.left - 2] < 128).any()  # the row tokens, left of the panels
    bar = image[g.top + 1 : g.top + g.panel - 1, g.bar_left + 4]  # the colour bar: 1 on top
    assert bar[0].tolist() != bar[-1].tolist()
