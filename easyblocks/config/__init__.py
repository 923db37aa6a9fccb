"""Config: loading .config files, validating them, and turning params into kwargs."""
