"""The timed loops scripts/bench.py compares: the real Trainer, a hand-written loop over
the same model, batches and optimizer, and attention's paths against SDPA called directly.

Each returns seconds; the bench decides what to compare and how often (src/bench/measure.py).
torch and Lightning load inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from omegaconf import open_dict

from src.bench.errors import BenchError
from src.bench.measure import flops_per_token
from src.paths import CONF_DIR


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def build_parts(overrides: list[str], output_dir: str):
    from src.training.build import build

    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir
    return cfg, build(cfg)


class StepTimer:
    """A Lightning callback recording when each training step ends. On a GPU it waits for
    the queued kernels at the steps in `sync_at` (1-based) only, so the times there are of
    work done, and the steps between keep the GPU's queue full, as in a real run."""

    def __init__(self, sync_at: frozenset[int] = frozenset()):
        import lightning as L
        import torch

        timer = self

        class _Callback(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, *args, **kwargs):
                if pl_module.device.type == "cuda" and len(timer.ends) + 1 in sync_at:
                    torch.cuda.synchronize(pl_module.device)
                timer.ends.append(time.perf_counter())

        self.ends: list[float] = []
        self.callback = _Callback()


def sync_steps(warmup: int, total: int) -> frozenset[int]:
    """The steps (1-based) whose end time a loop reads: on a GPU it waits for the queued
    kernels there, and only there, so both loops time work done with a full queue between."""
    return frozenset({1, warmup, total})


def lightning_seconds_per_step(
    overrides,
    steps,
    warmup,
    callback: str | None,
    compile_model: bool | str = False,
    *,
    logger: bool = True,
    log_steps: bool = True,
    progress_bar: bool = False,
    manual: bool = False,
) -> float:
    """Steady-state seconds per step of the real Trainer, as a default run configures it,
    with one of the default config's callbacks (by class name) or none.

    The switches take parts away for the Lightning-gap profile: `logger=False` (no
    TensorBoard logger), `log_steps=False` (training_step never calls self.log),
    `progress_bar=True` (the default run's bar), `manual=True` (manual optimisation: the
    same AdamW step without Lightning's closure and optimizer-step hooks)."""
    import lightning as L

    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides + [f"trainer.max_steps={steps + warmup}"], out)
        timer = StepTimer(sync_at=sync_steps(warmup, steps + warmup))
        callbacks = [timer.callback]
        if callback:
            callbacks += [c for c in parts.trainer.callbacks if type(c).__name__ == callback]
        if progress_bar:
            from src.training.progress import StepProgressBar

            callbacks.append(StepProgressBar())
        model = parts.model
        if manual:
            make_manual(model)
        trainer = L.Trainer(
            accelerator=cfg.trainer.accelerator,
            devices=1,
            precision=cfg.trainer.precision,
            max_steps=steps + warmup,
            logger=parts.trainer.logger if logger else False,
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            log_every_n_steps=cfg.trainer.log_every_n_steps if log_steps else 10**9,
        )
        if compile_model:  # as compile=true (or compile=MODE) does (src/training/run.py)
            model.net.compile(mode=compile_model if isinstance(compile_model, str) else None)
        trainer.fit(model, datamodule=parts.datamodule)
    return (timer.ends[-1] - timer.ends[warmup - 1]) / steps


def make_manual(model) -> None:
    """Switch a built LitTransformerLM to manual optimisation with the same loss and AdamW step,
    so the difference to the automatic run is Lightning's closure and its hooks."""
    import types

    from src.modules import masked_cross_entropy

    def training_step(self, batch, batch_idx):
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        loss = masked_cross_entropy(self(batch.inputs), batch.targets, batch.loss_mask)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        scheduler.step()
        return loss

    model.automatic_optimization = False
    model.training_step = types.MethodType(training_step, model)


def plain_seconds_per_step(
    overrides, steps, warmup, compile_model=False, device: str = "cpu", loader: bool = False
) -> tuple[float, float]:
    """The same model, batches, AdamW and schedule in a hand-written loop (bf16 autocast
    when the config's precision is bf16-mixed, as Lightning's). `loader=True` draws the
    batches through the datamodule's DataLoader, as Lightning does, instead of the stream.

    Returns (seconds per steady step, seconds for the first step)."""
    import torch

    from src.data.datamodule import TaskStream
    from src.modules import masked_cross_entropy
    from src.training.lit_module import adamw_with_schedule

    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides, out)
    module, task = parts.model, parts.task
    net = module.net.to(device)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    total = steps + warmup
    optimizer, scheduler = adamw_with_schedule(net, total, **module.hparams)
    mode = compile_model if isinstance(compile_model, str) else None
    model = torch.compile(net, mode=mode) if compile_model else net
    if loader:
        parts.datamodule.setup("fit")
        stream = iter(parts.datamodule.train_dataloader())
    else:
        stream = iter(TaskStream(task, cfg.data.batch_size, cfg.seed))
    log_every = cfg.trainer.log_every_n_steps
    sync_at = sync_steps(warmup, total)
    ends = []
    start = time.perf_counter()
    for step in range(1, total + 1):
        batch = next(stream)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model(batch.inputs.to(device))
        loss = masked_cross_entropy(
            logits.float(), batch.targets.to(device), batch.loss_mask.to(device)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % log_every == 0:
            loss.item()  # what a loop that prints its loss pays for, as often as Lightning
        if device == "cuda" and step in sync_at:
            torch.cuda.synchronize()
        ends.append(time.perf_counter())
    return (ends[-1] - ends[warmup - 1]) / steps, ends[0] - start


def attention_timings(B: int, T: int, d: int, h: int, budget: float) -> dict[str, float]:
    """Median seconds of forward+backward for each path, measured in interleaved rounds."""
    import torch
    import torch.nn.functional as F
    from torch.utils.benchmark import Timer

    from src.modules import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention.from_dims(d, h)
    x = torch.randn(B, T, d, requires_grad=True)
    hs = d // h

    def direct():  # the same projections and F.scaled_dot_product_attention, inline
        q = F.linear(x, mha.query.weight).view(B, T, h, hs).transpose(1, 2)
        k = F.linear(x, mha.key.weight).view(B, T, h, hs).transpose(1, 2)
        v = F.linear(x, mha.value.weight).view(B, T, h, hs).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=mha.scale)
        F.linear(y.transpose(1, 2).reshape(B, T, d), mha.out.weight).sum().backward()

    def fast():
        mha(x)[0].sum().backward()

    def explicit():
        mha(x, need_weights=True)[0].sum().backward()

    samples: dict[str, list[float]] = {"direct": [], "fast": [], "explicit": []}
    for _ in range(3):
        for label, fn in (("direct", direct), ("fast", fast), ("explicit", explicit)):
            fn()  # warm up
            timer = Timer("fn()", globals={"fn": fn})
            samples[label].append(timer.blocked_autorange(min_run_time=budget / 3).median)
    return {label: statistics.median(times) for label, times in samples.items()}


def model_flops_per_token(net, seq_len: int) -> int:
    """nanoGPT's count for this network: N is every parameter but the positional table
    (a lookup); the token embedding is tied to the unembedding, a matmul, and counts once."""
    lookups = {id(p) for p in net.position.parameters()} if net.position is not None else set()
    n = sum(p.numel() for p in net.parameters() if id(p) not in lookups)
    config = net.config
    return flops_per_token(n, config.layers, config.heads, config.head_size, seq_len)


def check_sdpa_backend(net, inputs, device: str) -> str:
    """Which fused SDPA kernel runs this shape: flash, else memory-efficient. The math
    fallback is never allowed (sdpa_kernel then raises), so this fails loudly instead of
    reporting a slow figure as the model's: BenchError when neither runs."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    errors = []
    for name, backend in (
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("memory-efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):
        try:
            with sdpa_kernel([backend]), torch.autocast(device, dtype=torch.bfloat16):
                logits, _ = net(inputs)
                logits.float().sum().backward()
            net.zero_grad(set_to_none=True)
            return name
        except RuntimeError as err:
            errors.append(f"{name}: {str(err).splitlines()[0]}")
    raise BenchError(
        "neither flash nor memory-efficient attention runs this shape, only the math "
        f"fallback would ({'; '.join(errors)})."
    )
