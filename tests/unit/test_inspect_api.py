"""The notebook API (`from src.inspect import load_run`) on the trained run: its attention is
the model's own, its answers are the inspect script's, and its view is circuitsvis's,
inlined, with nothing fetched from the network (the page in a real browser:
tests/integration/test_inspect_page.py)."""

from __future__ import annotations

import re
import socket
import urllib.request
from html.parser import HTMLParser

import pytest
import torch

from src.preflight.checks import ConfigError
from tests.helpers import PROMPT, compose_config


@pytest.fixture(scope="module")
def run(trained_run):
    from src.inspect import load_run

    run_dir, *_ = trained_run
    return load_run(run_dir)  # a folder named with `=` and `,`, as train.py names them


def test_load_run_gives_the_model_its_config_and_task(trained_run, run):
    run_dir, net, task, _ = trained_run
    assert run.checkpoint == run_dir / "checkpoints" / "last.ckpt"
    assert run.config.heads == 2 and run.config.task.length == 4  # the run's own overrides
    assert run.task.name == task.name == "sort" and run.model.config.heads == 2
    assert not run.model.training
    mine, theirs = run.model.state_dict(), net.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[key], theirs[key]) for key in mine)


def test_attention_is_per_layer_heads_by_T_by_T_causal_rows_summing_to_one(trained_run, run):
    """And exactly what the model's own forward gives for the sequence it answered."""
    _, net, task, _ = trained_run
    attention = run.attention(PROMPT)
    T = task.sample(1, torch.Generator().manual_seed(0)).inputs.size(1)
    assert len(attention.tokens) == T and attention.tokens[:5] == PROMPT.split() + ["|"]
    with torch.no_grad():
        logits, maps = net(attention.answer.inputs[None], need_weights=True)
    assert len(attention.weights) == len(maps) == 2
    for weights, own in zip(attention.weights, maps):
        assert weights.shape == (2, T, T)
        assert torch.allclose(weights.sum(-1), torch.ones(2, T))
        assert torch.equal(weights.triu(1), torch.zeros(2, T, T))  # causal: no later key
        assert torch.allclose(weights, own.weights[0], atol=1e-6)
    # teacher-forcing the model's own answers predicts them again: they are its greedy ones
    mask = attention.answer.loss_mask
    assert torch.equal(logits[0].argmax(-1)[mask], attention.answer.generated[mask])


def test_generate_answers_as_the_inspect_script_and_greedy_generation_do(
    trained_run, run, tmp_path
):
    from src.inspect.prompts import PromptLayout
    from src.inspect.report import inspect_model
    from src.modules import greedy_generate

    run_dir, net, task, val = trained_run
    answer = run.generate(PROMPT)
    assert answer.expected == ["a", "b", "d", "e"]  # the task's rule
    assert answer.right == (answer.answer == answer.expected)
    cfg = compose_config("inspect", [f"run='{run_dir}'", f"prompt='{PROMPT}'"], tmp_path)
    assert f"  generated  {answer.text}" in inspect_model(cfg)

    free = PromptLayout.of(task).free
    generated = greedy_generate(net, *(t[:8] for t in val))
    for i in range(8):  # val examples typed as prompts: the same answers as the batch's
        sequence = torch.cat([val.inputs[i], val.targets[i, -1:]])
        typed = " ".join(task.render(int(sequence[p])) for p in free)
        mine = run.generate(typed)
        assert torch.equal(mine.generated, generated[i]), typed
        assert mine.expected == [task.render(t) for t in val.targets[i][val.loss_mask[i]]]


def tags(page: str) -> dict[str, list[dict[str, str | None]]]:
    """Each tag of the page (script content is not markup) -> the attributes of each."""
    found: dict[str, list[dict[str, str | None]]] = {"script": []}

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.setdefault(tag, []).append(dict(attrs))

    Tags().feed(page)
    return found


def circuitsvis_parts(local_src: str) -> tuple[str, str]:
    """(the JavaScript inlined, the props passed) of circuitsvis's own `local_src`."""
    match = re.fullmatch(
        r'<div id="[^"]+" style="margin: 15px 0;"/>\s*<script crossorigin type="module">\n'
        r"    (?P<js>.*)\n    \n    CircuitsVis\.render\(\n      \"[^\"]+\",\n"
        r"      CircuitsVis\.AttentionHeads,\n      (?P<props>.*)\n    \)\n    </script>",
        local_src,
        re.S,
    )
    assert match, "circuitsvis's render template changed: look at html_view.py again"
    return match["js"], match["props"]


def test_the_view_is_circuitsvis_inlined_with_no_network(run, monkeypatch):
    """Jupyter's `_repr_html_` holds circuitsvis's bundle and, per layer, the very props
    `circuitsvis.attention.attention_heads` renders; it probes no network (circuitsvis's
    own `_repr_html_` opens google.com) and no script comes from a URL (its `str()` does)."""
    import circuitsvis.attention

    calls = []  # recorded, not raised: circuitsvis's probe swallows every exception

    def offline(*args, **kwargs):
        calls.append(args)
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(socket.socket, "connect", offline)
    attention = run.attention(PROMPT)
    shown = attention._repr_html_()
    assert calls == []
    assert "<html" not in shown  # a fragment, for a notebook's output cell
    assert [attrs for attrs in tags(shown)["script"] if "src" in attrs] == []  # all inline
    urls = [v for attrs in sum(tags(shown).values(), []) for v in attrs.values() if v]
    assert not [url for url in urls if "//" in url or url.startswith("http")]
    assert not re.search(r"""(import|from)\s*\(?\s*["'](https?:)?//""", shown)  # an ES import
    for layer, weights in enumerate(attention.weights):
        names = [f"L{layer}H{h}" for h in range(2)]
        theirs = circuitsvis.attention.attention_heads(
            attention=weights, tokens=attention.tokens, attention_head_names=names,
            mask_upper_tri=True,
        )  # fmt: skip
        js, props = circuitsvis_parts(theirs.local_src)
        assert shown.count(js) == 1  # the bundle once, as circuitsvis inlines it
        assert f"CircuitsVis.AttentionHeads, {props});" in shown
        assert "https://unpkg.com/circuitsvis" in theirs.cdn_src  # what is not used
    assert len(shown) > 1_000_000  # the bundle: 1.3 MB


def test_a_page_of_many_examples_inlines_the_bundle_once(trained_run, run, tmp_path):
    from src.inspect.html_view import bundle

    _, _, _, val = trained_run
    answers = run.answer(type(val)(*(t[:3] for t in val)), known=True)
    page = run.view(answers).save(tmp_path / "attention.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count(bundle()) == 1
    assert page.count("CircuitsVis.render(") == 3 * 2  # examples x layers
    for i, answer in enumerate(answers):
        assert f"example {i + 1}: {answer.prompt}" in page
        assert f"  generated  {' '.join(answer.answer)}" in page


def test_layer_props_are_heads_dest_src_and_shapes_are_checked():
    import json

    from src.inspect.html_view import layer_props

    weights = torch.softmax(
        torch.randn(3, 4, 4).masked_fill(~torch.ones(4, 4).bool().tril(), -1e9), -1
    )
    props = json.loads(layer_props(weights, list("ab|c"), 1, causal=True))
    assert props["attentionHeadNames"] == ["L1H0", "L1H1", "L1H2"]
    assert torch.allclose(torch.tensor(props["attention"]), weights)  # [heads, dest, src]
    assert props["maskUpperTri"] is True
    with pytest.raises(ValueError, match=r"\(heads, T, T\) over the T tokens"):
        layer_props(weights, list("ab|"), 0, causal=True)


def test_load_run_refuses_what_it_cannot_load(trained_run, tmp_path):
    from src.inspect import load_run

    run_dir, *_ = trained_run
    with pytest.raises(ConfigError, match="no such folder"):
        load_run(tmp_path / "logs" / "runs" / "nowhere")
    with pytest.raises(ConfigError, match="no such checkpoint"):
        load_run(run_dir, checkpoint="epoch=9.ckpt")
    assert load_run(run_dir, checkpoint="last.ckpt").step == load_run(run_dir).step
