"""Looking inside a trained model: load a run, answer prompts, show the attention."""
