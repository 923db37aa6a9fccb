"""Evaluation: exact metrics on arrays and the evaluator that runs a model over an input."""
