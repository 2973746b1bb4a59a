"""scripts/inspect_model.py's work: load a run, answer a prompt greedily, show the attention.

The model is rebuilt from the run's own `.hydra/config.yaml` (nobody retypes heads, scale or
the task) and loaded with weights_only. Prompts are typed in the task's glyphs; which
positions the user types, which the task fixes (the `|` separator) and which are answers
is read off the task's own samples, so every task works without a parser of its own. Only
the expected answer is the task's own rule (`Task.expected_answers`). Everything is checked
before any model is loaded; a bad value is a ConfigError (exit 2). Outputs go to this
inspection's own folder, never to the inspected run's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from src.analysis.attention_stats import visible_keys
from src.data.datamodule import VAL_STREAM, task_batch
from src.data.tasks import Batch, Task
from src.modules import TransformerLM, greedy_generate, head_knockout_losses
from src.preflight.checks import ConfigError
from src.runs.targets import current_targets
from src.training.checkpointing import CheckpointError, check_fits, load_checkpoint
from src.training.run import _instantiate, _positional_table_length, resolve_checkpoint

__all__ = ["ConfigError", "PromptLayout", "inspect_model", "parse_prompt"]

INSPECT_KEYS = ("run", "prompt", "random", "top_k")  # not part of the run being inspected


@dataclass
class Loaded:
    """A trained model with what it was trained on."""

    task: Task
    net: TransformerLM
    run_dir: Path
    checkpoint: Path
    step: int
    val: DictConfig  # the run's data config (val_size, val_seed)


# ---------------------------------------------------------------- which model


def locate(cfg: DictConfig) -> tuple[Path, Path]:
    """(run folder, checkpoint) from `run=FOLDER`, `ckpt_path=last` or `ckpt_path=FILE`."""
    run, ckpt_path = cfg.get("run"), cfg.get("ckpt_path")
    if run is not None and ckpt_path is not None:
        raise ConfigError(
            f"run={run} and ckpt_path={ckpt_path} both name a model. Allowed: one of them: "
            "run=FOLDER (its checkpoints/last.ckpt), or ckpt_path=last|FILE."
        )
    if run is None and ckpt_path is None:
        raise ConfigError(
            "no model given. Allowed: run=FOLDER (a run folder under logs/runs/), "
            "ckpt_path=FILE (a checkpoint), or ckpt_path=last with the run's own overrides "
            "(e.g. heads=2 scale=false ckpt_path=last)."
        )
    if run is not None:
        folder = Path(str(run))
        if not folder.is_dir():
            raise ConfigError(
                f"run={run}: no such folder. Allowed: a run folder written by "
                "scripts/train.py, e.g. logs/runs/<time>_heads=2,scale=false (`ls logs/runs`)."
            )
        checkpoint = folder / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise ConfigError(
                f"run={run} has no checkpoints/last.ckpt (it is written at the first "
                "validation), so there are no weights to look at. Allowed: a run folder that "
                "validated at least once, or ckpt_path=FILE for a checkpoint elsewhere."
            )
    else:
        train_cfg = _train_config(cfg)
        # train.py's own lookup and checks, so `last` means (and fails) exactly as it does there
        logging.getLogger("src.training.run").disabled = True  # it would say "resuming from"
        try:
            checkpoint = Path(
                resolve_checkpoint(train_cfg, _probe_model(train_cfg), to_resume=False)
            )
        finally:
            logging.getLogger("src.training.run").disabled = False
        folder = checkpoint.parent.parent
    if not (folder / ".hydra" / "config.yaml").is_file():
        raise ConfigError(
            f"{folder} has no .hydra/config.yaml, so the model cannot be rebuilt (its heads, "
            "scale and task are read from there). Allowed: a run folder written by "
            "scripts/train.py, or a checkpoint inside one (FOLDER/checkpoints/last.ckpt)."
        )
    return folder, checkpoint


def _train_config(cfg: DictConfig) -> DictConfig:
    """The train config these overrides give: the inspect-only keys dropped."""
    train_cfg = cfg.copy()
    with open_dict(train_cfg):
        for key in INSPECT_KEYS:
            train_cfg.pop(key, None)
    return train_cfg


def _probe_model(cfg: DictConfig) -> torch.nn.Module:
    task = _instantiate(cfg.task, "task")
    net = {
        "vocab_size": task.vocab_size,
        "max_seq_len": _positional_table_length(cfg, task.seq_len),
    }
    return _instantiate(cfg.model, "model", net=net)


def saved_config(run_dir: Path) -> tuple[DictConfig, Task]:
    """The run's own config and task, from its .hydra/config.yaml."""
    written = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    saved = OmegaConf.create(current_targets(OmegaConf.to_container(written)))
    return saved, _instantiate(saved.task, "task")


def load(run_dir: Path, checkpoint: Path) -> Loaded:
    """The run's model, rebuilt from its saved config, with the checkpoint's weights."""
    saved, task = saved_config(run_dir)
    model = _probe_model(saved)
    try:
        state = load_checkpoint(checkpoint)  # weights_only=True
        check_fits(state, model, checkpoint)
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    model.load_state_dict(state["state_dict"])
    return Loaded(task, model.net.eval(), run_dir, checkpoint, state["global_step"], saved.data)


# ---------------------------------------------------------------- prompts


@dataclass
class PromptLayout:
    """Where a task's sequence positions come from (full sequence, T+1 tokens).

    free: typed by the user; fixed: always the same token (the separator); answers: what the
    model generates. allowed[p]: the tokens position p takes in the task's samples.
    """

    length: int
    free: list[int]
    fixed: dict[int, int]
    answers: list[int]
    allowed: dict[int, list[int]]

    @staticmethod
    def of(task: Task, samples: int = 512) -> PromptLayout:
        batch = task.sample(samples, torch.Generator().manual_seed(0))
        sequence = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1)  # (S, T+1)
        answers = (batch.loss_mask[0].nonzero().flatten() + 1).tolist()
        given = [p for p in range(sequence.size(1)) if p not in answers]
        fixed = {p: int(sequence[0, p]) for p in given if (sequence[:, p] == sequence[0, p]).all()}
        allowed = {p: sorted(set(sequence[:, p].tolist())) for p in given}
        free = [p for p in given if p not in fixed]
        return PromptLayout(sequence.size(1), free, fixed, answers, allowed)


def parse_prompt(task: Task, text: str) -> Tensor:
    """The prompt's glyphs -> the full (T+1,) sequence, answers still 0.

    The user types the free positions; the fixed ones (`|`) may be typed or left out.
    """
    layout = PromptLayout.of(task)
    glyphs = str(text).split()
    given = sorted([*layout.free, *layout.fixed])
    if len(glyphs) == len(layout.free):
        positions = layout.free
    elif len(glyphs) == len(given):
        positions = given
    else:
        example = " ".join(
            task.render(layout.allowed[p][i % 3 % len(layout.allowed[p])])
            for i, p in enumerate(layout.free)
        )
        raise ConfigError(
            f"prompt={text!r} has {len(glyphs)} glyphs; the {task.name} task expects "
            f'{len(layout.free)} (with the separator, {len(given)}), e.g. prompt="{example}".'
        )
    vocabulary = {task.render(t): t for t in range(task.vocab_size)}
    sequence = torch.zeros(layout.length, dtype=torch.long)
    for p in layout.fixed:
        sequence[p] = layout.fixed[p]
    for i, (glyph, p) in enumerate(zip(glyphs, positions)):
        allowed = " ".join(task.render(t) for t in layout.allowed[p])
        if glyph not in vocabulary:
            raise ConfigError(
                f"prompt={text!r}: {glyph!r} is not a glyph of the {task.name} task. "
                f"Allowed: {' '.join(vocabulary)}."
            )
        if vocabulary[glyph] not in layout.allowed[p]:
            raise ConfigError(
                f"prompt={text!r}: glyph {i + 1} ({glyph!r}) cannot stand there in the "
                f"{task.name} task. Allowed at that place: {allowed}."
            )
        sequence[p] = vocabulary[glyph]
    return sequence


def prompt_batch(task: Task, sequence: Tensor) -> tuple[Batch, bool]:
    """A one-example Batch from a typed prompt (answers from the task's rule), and whether
    the rule gave every answer (if not, the model's own answers stand in for scoring)."""
    layout = PromptLayout.of(task)
    expected = task.expected_answers(sequence, layout.answers)
    sequence = sequence.clone()
    for p, token in zip(layout.answers, expected):
        sequence[p] = 0 if token is None else token
    loss_mask = torch.zeros(layout.length - 1, dtype=torch.bool)
    loss_mask[[p - 1 for p in layout.answers]] = True
    batch = Batch(sequence[None, :-1], sequence[None, 1:], loss_mask[None])
    return batch, all(token is not None for token in expected)


def examples(cfg: DictConfig, task: Task, data: DictConfig) -> tuple[Batch, bool]:
    """The examples asked for: the typed prompt, or the first `random` of the run's val set
    (`data`: the run's data config)."""
    prompt, count = cfg.get("prompt"), cfg.get("random")
    if prompt is not None and count:
        raise ConfigError(
            f"prompt={prompt!r} and random={count} both choose examples. Allowed: one of them."
        )
    if prompt is not None:
        return prompt_batch(task, parse_prompt(task, prompt))
    size = data.val_size
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= size:
        raise ConfigError(
            f'random={count!r} is not allowed: give prompt="..." in the task\'s glyphs, or '
            f"random=N with N from 1 to {size} (the run's val set)."
        )
    val = task_batch(task, size, data.val_seed, VAL_STREAM, 0)  # the run's val set
    return Batch(*(t[:count] for t in val)), True


# ---------------------------------------------------------------- views


def _row(cells: list[str], widths: list[int]) -> str:
    return " ".join(c.rjust(w) for c, w in zip(cells, widths))


def answer_lines(task: Task, batch: Batch, generated: Tensor, known: bool) -> list[str]:
    """Prompt, expected and generated answer per example; `^` under each wrong token."""
    lines = []
    for i, (inputs, targets, mask, gen) in enumerate(zip(*batch, generated)):
        sequence = torch.cat([inputs, targets[-1:]]).tolist()  # (T+1,)
        answer_at = set((mask.nonzero().flatten() + 1).tolist())
        prompt = " ".join("_" if p in answer_at else task.render(t) for p, t in enumerate(sequence))
        expected = [task.render(t) for t in targets[mask].tolist()]
        produced = [task.render(t) for t in gen[mask].tolist()]
        widths = [max(len(a), len(b)) for a, b in zip(expected, produced)]
        wrong = [a != b for a, b in zip(expected, produced)]
        lines.append(f"example {i + 1}: {prompt}")
        if known:
            lines.append(f"  expected   {_row(expected, widths)}")
        lines.append(f"  generated  {_row(produced, widths)}")
        if known and any(wrong):
            lines.append(
                f"             {_row(['^' if w else ' ' for w in wrong], widths).rstrip()}"
            )
        if known:
            lines.append(f"  {sum(wrong)} of {len(wrong)} wrong" if any(wrong) else "  all right")
    return lines


def attention_lines(
    task: Task, sequence: Tensor, mask: Tensor, maps: list, top_k: int, expected: Tensor
) -> list[str]:
    """Per generated answer token: each head's `top_k` keys (glyph@position weight) at the
    query that predicted it, one line a layer. `sequence` (T+1,) holds the generated answers,
    `expected` (T,) the task's next tokens."""
    tokens = [task.render(t) for t in sequence.tolist()]
    lines = []
    for t in mask.nonzero().flatten().tolist():
        answer, right = tokens[t + 1], task.render(int(expected[t]))
        verdict = "" if answer == right else f", WRONG: expected {right!r}"
        lines.append(
            f"  answer {answer!r} at position {t + 1}{verdict}, predicted by query {t} "
            f"({tokens[t]!r}):"
        )
        for layer, layer_maps in enumerate(maps):
            heads = []
            for head, row in enumerate(layer_maps.weights[0, :, t]):  # (T,) over keys
                weights, keys = row.topk(min(top_k, t + 1))
                keys_text = " ".join(
                    f"{tokens[k]}@{k} {w:.2f}".replace(" 0.", " .")
                    for w, k in zip(weights.tolist(), keys.tolist())
                )
                heads.append(f"h{head} {keys_text}")
            lines.append(f"    L{layer}  " + "   ".join(heads))
    return lines


def knockout_lines(net: TransformerLM, batch: Batch, targets: Tensor) -> list[str]:
    """The loss on these answers with each head zeroed, and how many answers generation still
    gets right without it (Michel et al. 2019)."""
    base, losses = head_knockout_losses(net, batch.inputs, targets, batch.loss_mask)
    total = int(batch.loss_mask.sum())
    layers, heads = losses.shape
    header = "".join(f"{'head ' + str(h):>18}" for h in range(heads))
    lines = [f"  all heads: loss {base:.4g}", f"  {'':8}{header}"]
    for layer in range(layers):
        cells = []
        for head in range(heads):
            mask = torch.ones(layers, heads)
            mask[layer, head] = 0
            generated = greedy_generate(net, batch.inputs, targets, batch.loss_mask, mask)
            right = int(((generated == targets) & batch.loss_mask).sum())
            cells.append(f"{losses[layer, head].item():.3g} ({right}/{total})".rjust(18))
        lines.append(f"  layer {layer} " + "".join(cells))
    return lines


def plot_layer(
    weights: Tensor, tokens: list[str], visible: Tensor, layer: int, wrong: list[int], title: str
):
    """One layer's (nh, T, T) maps as a matplotlib Figure: heads side by side, tokens on both
    axes (wrongly generated ones in red), the masked region hatched grey, a colour bar."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    heads, T, _ = weights.shape
    fig = Figure(figsize=(1.2 + 3.4 * heads, 4.0), layout="constrained")
    axes = fig.subplots(1, heads, squeeze=False)[0]
    cmap = colormaps["viridis"].with_extremes(bad="0.85")  # the masked region: grey
    for head, ax in enumerate(axes):
        data = np.ma.masked_where(~visible.numpy(), weights[head].numpy())  # (T, T)
        image = ax.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_title(f"layer {layer}, head {head}", fontsize=10)
        ax.set_xticks(range(T), tokens, fontsize=7)
        ax.set_yticks(range(T), tokens, fontsize=7)
        for i in wrong:  # a wrongly generated token, on both axes
            ax.get_xticklabels()[i].set_color("red")
            ax.get_yticklabels()[i].set_color("red")
        ax.set_xlabel("key")
        if head == 0:
            ax.set_ylabel("query (predicts the next token)")
    fig.colorbar(image, ax=list(axes), label="attention weight (grey: masked)", shrink=0.8)
    fig.suptitle(title, fontsize=9)
    return fig


# ---------------------------------------------------------------- the whole inspection


def inspect_model(cfg: DictConfig) -> str:
    """Everything inspect_model.py prints; PNGs and transcript.txt go to cfg.paths.output_dir."""
    top_k = cfg.get("top_k", 2)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is not allowed: it must be a positive integer.")
    run_dir, checkpoint = locate(cfg)
    saved, task = saved_config(run_dir)
    batch, known = examples(cfg, task, saved.data)  # refused here, before the weights load
    out = Path(cfg.paths.output_dir)
    if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
        raise ConfigError(
            f"hydra.run.dir={out} is inside the inspected run {run_dir}, which is never "
            "written to. Allowed: any other folder (the default is logs/inspect/...)."
        )
    loaded = load(run_dir, checkpoint)
    net = loaded.net
    generated = greedy_generate(net, *batch)  # (B, T)
    targets = batch.targets if known else generated  # score the model's own answers otherwise
    lines = [
        f"model: {run_dir} (step {loaded.step}, {task.name}, "
        f"{len(net.attention_layers())} layers x {net.config.heads} heads, "
        f"scale={_scale_text(net)})",
        "",
        "Greedy generation (each answer token fed back before the next; ^ marks a wrong token):",
        *answer_lines(task, batch, generated, known),
        "",
    ]
    if not known:
        lines += [f"({task.name}: inspect_model.py knows no rule for the expected answer)", ""]
    causal = net.config.causal
    for i in range(batch.inputs.size(0)):
        sequence = torch.where(batch.loss_mask[i], generated[i], batch.targets[i])  # (T,)
        inputs = torch.cat([batch.inputs[i, :1], sequence[:-1]])  # the generated sequence
        with torch.no_grad():
            _, maps = net(inputs[None], need_weights=True)
        tokens = [task.render(t) for t in inputs.tolist()]
        wrong = ((generated[i] != targets[i]) & batch.loss_mask[i]).nonzero().flatten()
        wrong_inputs = [int(t) + 1 for t in wrong if int(t) + 1 < len(tokens)]
        title = f"{run_dir.name}, step {loaded.step}: example {i + 1}"
        lines.append(
            f"Attention, example {i + 1} (top {top_k} keys per head: glyph@position weight):"
        )
        full = torch.cat([inputs, sequence[-1:]])
        lines += attention_lines(task, full, batch.loss_mask[i], maps, top_k, targets[i])
        for layer, layer_maps in enumerate(maps):
            figure = plot_layer(
                layer_maps.weights[0],
                tokens,
                visible_keys(len(tokens), causal),
                layer,
                wrong_inputs,
                title,
            )
            path = out / f"example{i + 1}_layer{layer}.png"
            figure.savefig(path, dpi=110)
            lines.append(f"  wrote {_shown(path)}")
        lines.append("")
    lines.append(
        "Head knock-out (teacher-forced loss on these answers with that head's output zeroed "
        "before W_o; in brackets: answer tokens generation still gets right):"
    )
    lines += knockout_lines(net, batch, targets)
    text = "\n".join(lines)
    (out / "transcript.txt").write_text(text + "\n")
    return text


def _shown(path: Path) -> str:
    """The path relative to the working folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _scale_text(net: TransformerLM) -> str:
    attn = net.attention_layers()[0]
    return f"{attn.scale:g} (1/sqrt(d_k) = {attn.head_dim**-0.5:.3g})"
