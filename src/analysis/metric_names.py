"""Every metric and TensorBoard tag attnlab writes, named once.

The training loop (lit_module), the callbacks, train's metrics.json, the TensorBoard views
and compare.py all read these names from here, so renaming a tag is one edit and a new
diagnostic is declared where the readers find it. Plain strings and small functions: no
torch, so compare.py and the config layer can import it without loading a framework.
`is_declared` is what a test holds every tag of a real run against.
"""

from __future__ import annotations

import re
import string

# --- the LightningModule's metrics (`self.log`) -------------------------------------------
TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
TRAIN_EXACT_MATCH = "train/exact_match"
TRAIN_LR = "train/lr"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
VAL_EXACT_MATCH = "val/exact_match"
VAL_GEN_ACC = "val/gen_acc"  # free-running: each answer token from the model's own answers
VAL_GEN_EXACT_MATCH = "val/gen_exact_match"
# log10 of the losses. A loss falling from 2 to 0.001 lies flat at 0 after a few hundred steps
# on a linear axis, and that is what TensorBoard opens every chart with: its custom-scalars
# layout has no axis option (layout_pb2.Chart: title, multiline, margin) and a chart's log
# axis is a button a user clicks, kept nowhere. CUSTOM SCALARS' loss chart plots these.
TRAIN_LOSS_LOG10 = "train/loss_log10"
VAL_LOSS_LOG10 = "val/loss_log10"
LOSS_FLOOR = 1e-12  # a loss of exactly 0 (certain to float precision) is drawn at log10 = -12
# Lightning adds `epoch` to every write of the module's metrics; attnlab's TensorBoard logger
# drops it (the data never ends, so it is always 0), but runs saved before still hold it.
EPOCH = "epoch"
# Written through Lightning's `self.log`, at the finished batch counted from 0; every other
# scalar here is written at the number of optimizer steps taken.
LOGGED_BY_LIGHTNING = (
    TRAIN_LOSS,
    TRAIN_LOSS_LOG10,
    TRAIN_ACC,
    TRAIN_EXACT_MATCH,
    TRAIN_LR,
    VAL_LOSS,
    VAL_LOSS_LOG10,
    VAL_ACC,
    VAL_EXACT_MATCH,
    VAL_GEN_ACC,
    VAL_GEN_EXACT_MATCH,
)

# What a run reports at its end: metrics.json (src/training/run.py) and the hparams tab's columns,
# in this order (metrics.json's key order follows it).
FINAL_METRICS = (
    VAL_LOSS,
    VAL_ACC,
    VAL_EXACT_MATCH,
    VAL_GEN_ACC,
    VAL_GEN_EXACT_MATCH,
    TRAIN_LOSS,
)
HPARAMS_PREFIX = "hp/"  # loggers other than TensorBoard get the final metrics under hp/*

# --- what the heads do, under one prefix that sorts after `train/` and `val/` ---------------
# TensorBoard's TIME SERIES tab sorts every card by its tag and groups the cards by the part
# before the first `/`, opening only the first two groups (tests/time_series.py cites its
# source). Under `xray/`, the dozens of per-head charts and the heat maps open collapsed,
# after the learning curves, instead of first (`attention/`, `attn/` sorted before `train/`).
XRAY = "xray/"
# Runs saved before kept these tags at the top level (`attn/entropy`); `current_tag` maps them.
OLD_PREFIXES = ("attn/", "grad/", "attention/", "knockout/")

# --- per-layer and per-head tags: one template each, formatted by the writers and matched
# by the readers. A field takes: layer, head: an index; stat: one of ATTN_STATS; weight: one
# of QUERY_KEY.
ATTN_STATS = ("entropy", "max_prob", "saturated_frac", "logit_std", "logit_absmax", "distance")
QUERY_KEY = ("query", "key")  # the weights whose gradient norms are logged per layer

ATTN_HEAD = XRAY + "attn/layer{layer}/head{head}/{stat}"  # AttentionDiagnostics' statistics
GRAD_QUERY_KEY = XRAY + "grad/layer{layer}/{weight}"  # the norm of W_q's or W_k's gradient
ATTENTION_IMAGE = XRAY + "attention/layer{layer}"  # heat maps of one layer's heads
KNOCKOUT_HEAD = XRAY + "knockout/layer{layer}/head{head}"  # val-loss rise, that head zeroed
KNOCKOUT_IMAGE = XRAY + "knockout/layer{layer}"  # one layer's rises as a bar chart
TEMPLATES = (ATTN_HEAD, GRAD_QUERY_KEY, ATTENTION_IMAGE, KNOCKOUT_HEAD, KNOCKOUT_IMAGE)

# --- single tags written by the callbacks ---------------------------------------------------
GRAD_TOTAL = XRAY + "grad/total"  # the norm of every weight's gradient together
PROBE_TOKENS = XRAY + "attention/probe_tokens"  # text: the probe example's tokens
KNOCKOUT_BASE_LOSS = XRAY + "knockout/base_loss"  # the val loss with every head


def attn_tag(stat: str, layer: int | None = None, head: int | None = None) -> str:
    """`xray/attn/layer{l}/head{h}/{stat}` for one head, or `xray/attn/{stat}` over all."""
    if layer is None:
        return f"{XRAY}attn/{stat}"
    return ATTN_HEAD.format(layer=layer, head=head, stat=stat)


ATTN_ENTROPY = attn_tag("entropy")
ATTN_SATURATED = attn_tag("saturated_frac")


def grad_tag(layer: int, weight: str) -> str:
    return GRAD_QUERY_KEY.format(layer=layer, weight=weight)


def attention_image_tag(layer: int) -> str:
    return ATTENTION_IMAGE.format(layer=layer)


def knockout_tag(layer: int, head: int) -> str:
    return KNOCKOUT_HEAD.format(layer=layer, head=head)


def knockout_image_tag(layer: int) -> str:
    return KNOCKOUT_IMAGE.format(layer=layer)


# --- matching: what compare.py reads, and what every written tag is checked against ---------
_FIELDS = {
    "layer": r"\d+",
    "head": r"\d+",
    "stat": "|".join(ATTN_STATS),
    "weight": "|".join(QUERY_KEY),
}


def pattern(template: str, **fixed: object) -> str:
    """A regex for the tags of `template`; `fixed` pins fields: pattern(ATTN_HEAD, layer=1,
    stat="entropy") is `xray/attn/layer1/head\\d+/entropy`, every head of layer 1."""
    regex = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        regex += re.escape(literal)
        if field in fixed:
            regex += re.escape(str(fixed[field]))
        elif field is not None:
            choices = _FIELDS[field]
            regex += f"(?:{choices})" if "|" in choices else choices
    return regex


def matches(template: str, tag: str) -> bool:
    return re.fullmatch(pattern(template), tag) is not None


_SINGLE = {
    *LOGGED_BY_LIGHTNING,
    EPOCH,
    GRAD_TOTAL,
    PROBE_TOKENS,
    KNOCKOUT_BASE_LOSS,
    *(attn_tag(stat) for stat in ATTN_STATS),
}


def current_tag(tag: str) -> str:
    """A tag as runs write it now: `attn/entropy` of a run saved before is `xray/attn/entropy`."""
    return XRAY + tag if tag.startswith(OLD_PREFIXES) else tag


def is_declared(tag: str) -> bool:
    """Whether `tag` is one named here (a per-layer or per-head one for any index)."""
    return tag in _SINGLE or any(matches(template, tag) for template in TEMPLATES)
