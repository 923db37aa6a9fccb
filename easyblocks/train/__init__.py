"""Training: the Trainer (one custom loop for every strategy) and the optimizers."""
