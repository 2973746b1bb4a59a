"""Lightning callbacks, one concern a module; conf/callbacks/default.yaml names them by
the names re-exported here (`src.training.callbacks.X`), which runs saved before the split also use.

diagnostics.py  AttentionDiagnostics (statistics, gradient norms, heat maps), HeadKnockout
samples.py      PrintSamples: validation examples and the model's answers, at the end
guard.py        NonFiniteGuard: stops at the first NaN/inf, raising TrainingDiverged
"""

from src.training.callbacks.diagnostics import AttentionDiagnostics, HeadKnockout
from src.training.callbacks.guard import NonFiniteGuard, TrainingDiverged
from src.training.callbacks.samples import PrintSamples

__all__ = [
    "AttentionDiagnostics",
    "HeadKnockout",
    "NonFiniteGuard",
    "PrintSamples",
    "TrainingDiverged",
]
