"""The interactive attention view: a self-contained HTML page (and Jupyter output) showing,
per example and layer, every head's attention over the tokens the model read, drawn by
circuitsvis (TransformerLens's viewer: hover a head to view it, click to lock, hover a cell
to read its weight). BertViz is not used: it pulls in `transformers`.

Nothing is loaded from the network: circuitsvis's JavaScript bundle, shipped in its wheel, is
inlined once per page. circuitsvis's own `RenderedHTML` is not used as the output: its
`str()` is the CDN version (unpkg), its `_repr_html_` probes google.com to choose, and its
`local_src` inlines the 1.3 MB bundle once per call, that is once per layer here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from uuid import uuid4

from torch import Tensor

from src.inspect.answers import Answer
from src.inspect.views import answer_lines

REACT_ELEMENT = "AttentionHeads"  # circuitsvis.attention.attention_heads renders this
HOW_TO_READ = (
    "Per layer, each head's attention over the tokens the model read, its own answers in "
    "place: rows are queries (each predicts the next token), columns are keys. Hover a head "
    "to view it, click to lock it; hover a cell to read its weight."
)


def bundle() -> str:
    """circuitsvis's JavaScript, from its wheel, as its own `render_local` inlines it."""
    source = resources.files("circuitsvis").joinpath("dist", "cdn", "iife.js")
    # as circuitsvis does: a closing script tag would end the inline script early
    return source.read_text(encoding="utf-8").replace("</script>", "")


def head_names(layer: int, heads: int) -> list[str]:
    """TransformerLens's names: L0H1 is layer 0's head 1."""
    return [f"L{layer}H{head}" for head in range(heads)]


def layer_props(weights: Tensor, tokens: list[str], layer: int, causal: bool) -> str:
    """The JSON props of circuitsvis's AttentionHeads for one layer's (heads, T, T) weights
    over `tokens` (T), exactly as `circuitsvis.attention.attention_heads` would pass them."""
    from circuitsvis.utils.convert_props import convert_props

    heads, rows, keys = weights.shape
    if not rows == keys == len(tokens):
        raise ValueError(
            f"attention of shape {tuple(weights.shape)} does not match {len(tokens)} tokens: "
            "it must be (heads, T, T) over the T tokens"
        )
    return convert_props(
        {
            "attention": weights.detach().float().cpu(),  # [heads, dest, src]
            "attentionHeadNames": head_names(layer, heads),
            "tokens": tokens,
            "maskUpperTri": causal,
        }
    )


def _escape_for_script(text: str) -> str:
    """JSON inside an inline script: `</` (as in a `</script>` glyph) cannot end it."""
    return text.replace("</", "<\\/")


@dataclass
class AttentionView:
    """Examples' attention, shown by circuitsvis. `_repr_html_` draws it in Jupyter (the
    page's body, offline, with no network probe); `page()` is the whole HTML document."""

    answers: list[Answer]
    title: str = "attention"
    causal: bool = True
    uid: str = field(default_factory=lambda: f"attnlab-{uuid4().hex[:10]}")

    def element_id(self, example: int, layer: int) -> str:
        return f"{self.uid}-e{example + 1}-l{layer}"

    def body(self) -> str:
        """The view as an HTML fragment: headings, answers, one circuitsvis element per
        example and layer, and one module script holding the bundle and the render calls."""
        parts = ['<div class="attnlab-attention" style="font-family: sans-serif">']
        heading = 'style="font-size: 1.3em; overflow-wrap: anywhere"'
        parts.append(f"<h1 {heading}>{html.escape(self.title)}</h1>\n<p>{HOW_TO_READ}</p>")
        calls = []
        for e, answer in enumerate(self.answers):
            verdict = {None: "no rule known", True: "right", False: "wrong"}[answer.right]
            parts.append(
                f'<section id="{self.uid}-e{e + 1}">\n<h2>example {e + 1}: {verdict}</h2>\n'
                f"<pre>{html.escape(chr(10).join(answer_lines(answer, e + 1)))}</pre>"
            )
            for layer, weights in enumerate(answer.attention):
                element = self.element_id(e, layer)
                props = layer_props(weights, answer.tokens[:-1], layer, self.causal)
                parts.append(f'<h3>layer {layer}</h3>\n<div id="{element}"></div>')
                calls.append(
                    f'CircuitsVis.render("{element}", CircuitsVis.{REACT_ELEMENT}, '
                    f"{_escape_for_script(props)});"
                )
            parts.append("</section>")
        # one module script, as circuitsvis's own template: the bundle defines CircuitsVis
        # in the module's scope, so the render calls must be in the same script
        script = "\n".join([bundle(), *calls])
        parts.append(f'<script type="module">\n{script}\n</script>\n</div>')
        return "\n".join(parts)

    def page(self) -> str:
        """A self-contained HTML document: opens offline, from a file."""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n</head>\n<body>\n"
            f"{self.body()}\n</body>\n</html>\n"
        )

    def save(self, path: Path) -> Path:
        """Write `page()` to `path`."""
        path = Path(path)
        path.write_text(self.page(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        """Jupyter's inline view: the page's body (no CDN, no network probe)."""
        return self.body()

    def __repr__(self) -> str:
        return f"AttentionView({self.title!r}, {len(self.answers)} example(s))"
