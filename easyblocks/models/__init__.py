"""Models: the CTRModel a config describes (features -> backbone -> towers), its losses,
and the model state that evaluation and serving restore."""
