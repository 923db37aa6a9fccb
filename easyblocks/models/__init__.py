"""Models: task towers, losses and the CTRModel built from a config."""
