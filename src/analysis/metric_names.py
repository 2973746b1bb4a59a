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
EPOCH = "epoch"  # Lightning adds it to every write of the module's metrics
# Written through Lightning's `self.log`, at the finished batch counted from 0; every other
# scalar here is written at the number of optimizer steps taken.
LOGGED_BY_LIGHTNING = (
    TRAIN_LOSS,
    TRAIN_ACC,
    TRAIN_EXACT_MATCH,
    TRAIN_LR,
    VAL_LOSS,
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

# --- per-layer and per-head tags: one template each, formatted by the writers and matched
# by the readers. A field takes: layer, head: an index; stat: one of ATTN_STATS; weight: one
# of QUERY_KEY.
ATTN_STATS = ("entropy", "max_prob", "saturated_frac", "logit_std", "logit_absmax", "distance")
QUERY_KEY = ("query", "key")  # the weights whose gradient norms are logged per layer

ATTN_HEAD = "attn/layer{layer}/head{head}/{stat}"  # AttentionDiagnostics (attention_stats.py)
GRAD_QUERY_KEY = "grad/layer{layer}/{weight}"  # the norm of W_q's or W_k's gradient
ATTENTION_IMAGE = "attention/layer{layer}"  # heat maps of one layer's heads, side by side
KNOCKOUT_HEAD = "knockout/layer{layer}/head{head}"  # val-loss rise with that head zeroed
KNOCKOUT_IMAGE = "knockout/layer{layer}"  # one layer's rises as a bar chart
TEMPLATES = (ATTN_HEAD, GRAD_QUERY_KEY, ATTENTION_IMAGE, KNOCKOUT_HEAD, KNOCKOUT_IMAGE)

# --- single tags written by the callbacks ---------------------------------------------------
GRAD_TOTAL = "grad/total"  # the norm of every weight's gradient together
PROBE_TOKENS = "attention/probe_tokens"  # text: the probe example's tokens, rows and columns
KNOCKOUT_BASE_LOSS = "knockout/base_loss"  # the val loss with every head


def attn_tag(stat: str, layer: int | None = None, head: int | None = None) -> str:
    """`attn/layer{l}/head{h}/{stat}` for one head, or `attn/{stat}` over all of them."""
    if layer is None:
        return f"attn/{stat}"
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
    stat="entropy") is `attn/layer1/head\\d+/entropy`, every head of layer 1."""
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


def is_declared(tag: str) -> bool:
    """Whether `tag` is one named here (a per-layer or per-head one for any index)."""
    return tag in _SINGLE or any(matches(template, tag) for template in TEMPLATES)
