"""Training, evaluation and the optimizers."""
