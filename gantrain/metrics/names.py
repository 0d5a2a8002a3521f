"""Which way each score is better, apart from the code that computes it: the report and
the health rules read it, and they must not import torch's metrics to do so."""

from __future__ import annotations

# Scores of the evaluation where lower is better (the rest: higher is better).
LOWER_IS_BETTER = {"fid", "kid_mean", "classifier_fid"}
