"""Looking inside a trained model: load a run, answer prompts, show the attention.

In a notebook: `from src.inspect import load_run` (src/inspect/api.py)."""

from src.inspect.api import Attention, Run, load_run

__all__ = ["Attention", "Run", "load_run"]
