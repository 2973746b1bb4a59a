"""A trained run in a notebook: the model, its config and task, a prompt's greedy answer and
its attention, shown inline by circuitsvis. scripts/inspect_model.py answers and draws with
the same `Run.answer` and `Run.view`, so the notebook and the script cannot disagree.

    from src.inspect import load_run
    run = load_run("logs/runs/<time>_trainer.max_steps=300")
    run.generate("e a c b a c a c").text      # its answer, e.g. 'a a a b c c c c'
    run.attention("e a c b a c a c")          # the last line of a cell: the view, inline
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from torch import Tensor

from src.data.tasks import Batch
from src.inspect.answers import Answer, answer_batch
from src.inspect.html_view import AttentionView
from src.inspect.load import Loaded, load, locate
from src.inspect.prompts import parse_prompt, prompt_batch
from src.modules import TransformerLM
from src.preflight.checks import ConfigError


@dataclass
class Attention:
    """A prompt's attention: `weights[layer]` is (heads, T, T) over `tokens` (rows are
    queries, causal: zero above the diagonal), `answer` the generation it was read from.
    In Jupyter it shows as `view`: circuitsvis, offline."""

    weights: list[Tensor]
    tokens: list[str]
    answer: Answer
    view: AttentionView

    def _repr_html_(self) -> str:
        return self.view._repr_html_()


@dataclass
class Run(Loaded):
    """A trained run, loaded: `model` (its TransformerLM, in eval mode; also `net`), `config`
    (the run's own .hydra/config.yaml), `task`, `run_dir`, `checkpoint` and its `step`."""

    @property
    def model(self) -> TransformerLM:
        return self.net

    def __repr__(self) -> str:
        net = self.model
        return (
            f"Run({str(self.run_dir)!r}, step {self.step}, {self.task.name}, "
            f"{len(net.attention_layers())} layers x {net.config.heads} heads)"
        )

    def answer(self, batch: Batch, known: bool) -> list[Answer]:
        """Each example of `batch` answered greedily, with its attention."""
        return answer_batch(self.model, self.task, batch, known)

    def view(self, answers: list[Answer]) -> AttentionView:
        """The interactive attention view of these answers (one page, the bundle once)."""
        title = f"{self.run_dir.name}, step {self.step}"
        return AttentionView(answers, title, causal=self.model.config.causal)

    def generate(self, prompt: str) -> Answer:
        """The greedy answer to `prompt`, typed in the task's glyphs as for
        `inspect_model.py prompt=...` (the separator `|` optional). `.text` is the answer,
        `.right` whether the task's rule agrees (None: no rule), `.sequence` the tokens."""
        return self.answer(*prompt_batch(self.task, parse_prompt(self.task, prompt)))[0]

    def attention(self, prompt: str) -> Attention:
        """The attention while answering `prompt`: per layer (heads, T, T), and its view."""
        answer = self.generate(prompt)
        return Attention(answer.attention, answer.tokens[:-1], answer, self.view([answer]))


def load_run(path: str | Path, checkpoint: str | Path | None = None) -> Run:
    """The run in folder `path` (logs/runs/<time>_..., `=` and `,` in its name as train.py
    makes them), rebuilt from its saved config with the weights of `checkpoint`: by default
    its checkpoints/last.ckpt; else a file, or a name in the run's checkpoints/."""
    if checkpoint is None:
        run_dir, file = locate(OmegaConf.create({"run": str(path)}))
    else:
        run_dir, file = Path(path), Path(checkpoint)
        if not file.is_file():
            file = run_dir / "checkpoints" / file
        if not file.is_file() or not (run_dir / ".hydra" / "config.yaml").is_file():
            raise ConfigError(
                f"load_run({str(path)!r}, checkpoint={str(checkpoint)!r}): no such checkpoint "
                "(a file, or a name in the run's checkpoints/), or no run folder (with its "
                ".hydra/config.yaml) to rebuild the model from."
            )
    return Run(**vars(load(run_dir, file)))
