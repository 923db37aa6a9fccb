"""Features: specs, the raw-column preprocessing and the embedding of feature groups."""
