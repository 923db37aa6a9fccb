"""easyblocks: config-driven CTR models on TensorFlow 2 / Keras 3."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
__all__ = ["register_block", "register_model_class", "__version__"]


def __getattr__(name: str):
    # lazy, so that `import easyblocks.cli` does not load TensorFlow before it must
    if name == "register_block":
        from easyblocks.blocks.registry import register_block

        return register_block
    if name == "register_model_class":
        from easyblocks.config.templates import register_model_class

        return register_model_class
    raise AttributeError(f"module 'easyblocks' has no attribute {name!r}")
